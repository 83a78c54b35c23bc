"""conversation.yaml, compiled: which cues a child turn carries, and who is named doing it.

Split from conversation.py, which keeps the per-child state and the patterns over turns; this
module is the vocabulary (the cue kinds, the settings and their defaults) and the reading of
one turn: its cues (regex lists an operator can read and change) and the peer it names.
"""

from pathlib import Path
import re
from typing import Dict, FrozenSet, List, Optional, Pattern

from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.safety.cues import CueSettings
from kidscare_llm.core.safety.lexicon import alternation, strings
from kidscare_llm.core.safety.normalise import compact
from kidscare_llm.core.safety.patterns import PatternSettings

CONVERSATION_FILE = 'conversation.yaml'
# "학교에서도 ...", "지난주에도 ...": a place, a listener or a time, not who did it
PLACES = ('에서', '에게', '한테', '에')
GROOMING_MORE = ('gift', 'secret', 'alone', 'ride', 'photo', 'contact', 'special')  # + adult
ISOLATING = ('secret', 'alone', 'photo_ask', 'touch', 'contact')  # or a stranger's ride
CUES = ('adult', 'stranger', 'online', 'meet', 'photo_ask', 'touch') + GROOMING_MORE + (
    'surprise', 'low', 'blame', 'setback', 'persist', 'recover', 'hurt', 'resolved', 'again',
    'same', 'story', 'told', 'lesson', 'together', 'family', 'outsider', 'arranged')
# a two-syllable name said syllable by syllable before its particle ("예 준 이가", "민 서 가")
SPLIT_NAME = re.compile(r'(?<![가-힣])(?!(?:또|나|내|너|저|제|걔|쟤|더|좀|막|꼭|다|왜|잘|안|못|그) )'
                        r'([가-힣]) ([가-힣]) ?(?=(?:이가|이는|이도|이랑|이한테|가|는|도|한테)(?:\s|$))')
# a name's particle split off it before "again" ("도윤이 가 또")
SPLIT_PARTICLE = re.compile(r'(?<![가-힣])([가-힣]{1,3}이) (가|는)(?= (?:또|맨날|자꾸|계속|오늘도|어제도))')
# a brother, sister or relative: in one turn "오빠가 또 놀렸어" is family teasing, not a bully
KIN = frozenset({'형', '형아', '행아', '엉아', '누나', '언니', '오빠', '동생', '고모', '이모', '삼촌',
                 'brother', 'sister'})
# "6학년 형", "옆반 누나", "그 형" (one's own brother is not "that" brother): an older child
SCHOOLMATE = re.compile(r'(?:\d\s?학년|학년|옆\s?반|윗\s?반|같은\s?반|중학생|중딩|고딩|동네|학원|'
                        r'놀이터|옆집|(?<![가-힣])그)\s?$')
# "하준이 형아가 …": an older child called by name (one's own brother is not)
NAMED_KIN = re.compile(r'이?\s(형아|형|행아|엉아|누나|언니|오빠)(?:이|가|는|도|랑|한테)?(?:\s|$)')
# "현우 형이 …" (round 20): a two-syllable given name right before 형/누나, not a word of time,
# manner or family ("갑자기 형이", "사촌 형이")
NAME_BEFORE = re.compile(r'(?:^|\s)([가-힣]{2})이?\s?$')
NOT_NAMES = frozenset({'사촌', '친척', '큰집', '막내', '첫째', '둘째', '갑자기', '그때', '정말',
                       '완전', '이제', '아직', '벌써', '다시', '항상', '먼저', '나중', '그럼',
                       '그래', '원래', '같이', '혼자', '친형', '친언니', '친오빠', '친누나'})
PARTICLE_END = tuple('가는도를을에의고면데랑만까게요해했다')
# what someone might do, or what one should do: a lesson retold goes on in such a turn
HYPOTHETICAL = re.compile(r'(하면|으면|이면|\bif\b|\bnever\b|\byou (should|tell|say)\b)')
LAUGH = re.compile(r'ㅋㅋ|ㅎㅎ|\blol\b|\blmao\b')  # said laughing: not a complaint on its own
SETTINGS = {'enabled': True, 'window_turns': 40, 'window_days': 14.0, 'low_mood_turns': 3,
            'blame_turns': 2, 'bullying_turns': 2, 'bullying_turns_without_again': 3,
            'bullying_turns_said_again': 1, 'low_mood_turns_many': 3}


class ConversationRules:
    """The cues of conversation.yaml, compiled; `cues(text)` says which a turn carries."""

    def __init__(self, cues: Dict[str, Pattern], peer: List[Pattern],
                 not_peers: FrozenSet[str], settings: dict,
                 learned: Optional[Dict[str, Dict[str, float]]] = None,
                 cue_settings: Optional[CueSettings] = None,
                 pattern_settings: Optional[PatternSettings] = None):
        self.learned = learned or {}  # cue -> {classifier category: P that adds the cue}
        self.cue_settings = cue_settings  # the learned cues (cues.py), or None
        self.pattern_settings = pattern_settings  # the learned patterns (patterns.py), or None
        self.cue_rx = cues
        self.peer_rx = peer
        self.not_peers = not_peers
        self.settings = settings

    @classmethod
    def parse(cls, data: dict, path: Path) -> 'ConversationRules':
        """Validate conversation.yaml's mapping (ConfigError naming the fix)."""
        cues = data.get('cues') or {}
        unknown = set(cues) - set(CUES)
        if not isinstance(cues, dict) or unknown:
            raise ConfigError(f'{path}: cues must map some of {", ".join(CUES)} to regex lists '
                              f'(unknown: {sorted(unknown)}); fix it')
        compiled = {k: alternation(strings(cues, k, path), path, f'cues.{k}') for k in cues}
        settings = dict(SETTINGS)
        for key, default in SETTINGS.items():
            try:
                settings[key] = type(default)(data.get(key, default))
            except (TypeError, ValueError):
                raise ConfigError(f'{path}: {key} must be like {default!r}; fix it') from None
        peer = [alternation([p], path, 'peer_subject')
                for p in strings(data, 'peer_subject', path)]
        if any('who' not in rx.groupindex for rx in peer):
            raise ConfigError(f'{path}: each peer_subject needs a (?P<who>...) group; add it')
        learned = data.get('classifier_cues') or {}
        if not isinstance(learned, dict) or not all(
                k in CUES and isinstance(v, dict)
                and all(isinstance(x, (int, float)) and 0 < x <= 1 for x in v.values())
                for k, v in learned.items()):
            raise ConfigError(f'{path}: classifier_cues must map cues to {{category: P in '
                              '(0, 1]}}; fix it')
        from kidscare_llm.core.safety.policy import default_train_dir

        return cls({k: v for k, v in compiled.items() if v is not None}, peer,
                   frozenset(strings(data, 'not_peers', path)), settings,
                   {k: {c: float(x) for c, x in v.items()} for k, v in learned.items()},
                   CueSettings.parse(data.get('cue_classifier'), path, frozenset(CUES)),
                   PatternSettings.parse(data.get('pattern_model'), path, default_train_dir()))

    def cues(self, spaced: str) -> FrozenSet[str]:
        """Return the cue kinds of a normalised turn (with and without spaces)."""
        packed = compact(spaced)
        found = {k for k, rx in self.cue_rx.items() if rx.search(spaced) or rx.search(packed)}
        if 'online' in found:
            found |= {'adult', 'stranger'}  # met online: an adult the child does not know
        if 'surprise' in found:
            found.discard('secret')  # a surprise for mom is a happy secret
        if 'resolved' in found:
            found.discard('hurt')
        if 'story' in found:
            found -= {'low', 'hurt'}  # a sad film, a game's fight
        return frozenset(found)

    def peer(self, spaced: str) -> str:
        """Return who is named doing it (the subject nearest before the end), '' for none.

        A name speech recognition split ("예 준 이가", "도윤이 가 또") is joined first.
        """
        spaced = SPLIT_PARTICLE.sub(r'\1\2', SPLIT_NAME.sub(r'\1\2', spaced))
        names = sorted((m.start('who'), m.group('who'))
                       for rx in self.peer_rx for m in rx.finditer(spaced))
        # one Hangul syllable is a verb's stem ("쉬는 시간", "하는 형이"), except 형 itself
        names = [(at, n) for at, n in names if n not in self.not_peers and not n.endswith(PLACES)
                 and (len(n) > 1 or n == '형' or n.isascii())]
        if not names:
            return ''
        at, name = names[-1]
        if name in KIN and SCHOOLMATE.search(spaced[:at].rstrip()):
            return f'{spaced[:at].split()[-1]} {name}'  # "6학년 형": not a brother
        given = NAME_BEFORE.search(spaced[:at]) if name in KIN else None
        if given and given[1] not in self.not_peers and given[1] not in NOT_NAMES and \
                not given[1].endswith(PARTICLE_END):
            return f'{given[1]} {name}'  # "현우 형이": an older child by name
        kin = NAMED_KIN.match(spaced, at + len(name))
        name = name[:-1] if len(name) >= 3 and name.endswith('이') else name
        if kin and name not in KIN and not name.isascii():
            return f'{name} {kin[1]}'  # "하준이 형아": an older child by name; "형아" is them
        return name
