"""Conversation-level risk: patterns a child tells in pieces, over several turns and days.

No single line of "아저씨가 사탕 줬어" … "엄마한테는 비밀이래" … "내일 차 타고 어디 가자고 했어"
is alarming; together they are grooming. Likewise a low mood or self-blame said again and
again, or the same classmate hurting the child again. The per-utterance checker cannot see
these, so this stage keeps, per child, the recent child turns (rebuilt from the session store
at the first turn after a start, `window_days` back) with the cues each one carries (regexes
in config/safety/conversation.yaml), and raises an alert of its own category (grooming,
low_mood, bullying_repeat) whose reason lists the turns that made the pattern. The patterns
are rules an operator can read and change; the cues come from the regex lists
(conversation_rules.py reads them) and from two learned models (the classifier's categories,
and the cue model of cues.py).
"""

from dataclasses import dataclass, field
import logging
from pathlib import Path
import threading
import time
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple

from kidscare_llm.core.safety.conversation_rules import (CONVERSATION_FILE, ConversationRules,
                                                         GROOMING_MORE, HYPOTHETICAL,
                                                         ISOLATING, KIN, LAUGH)
from kidscare_llm.core.safety.cues import create as create_cue_model, CueModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    """One child turn as this stage remembers it."""

    text: str
    time: float
    cues: FrozenSet[str]
    peer: str = ''  # who hurt the child ('' none named; a pronoun resolves to the last one)


@dataclass(frozen=True)
class ConversationAlert:
    """A pattern over turns; reads like a Verdict for AlertLog.raise_alert."""

    category: str  # grooming | low_mood | bullying_repeat
    reason: str  # the pattern and the turns that made it
    turns: Tuple[str, ...]
    action: str = 'alert'
    alert: bool = True


@dataclass
class _Child:
    turns: List[Turn] = field(default_factory=list)
    since: Dict[str, int] = field(default_factory=dict)  # category -> turns before don't count
    dropped: int = 0  # turns dropped off the front (keeps `since` indexes absolute)


class ConversationMonitor:
    """Per-child rolling state over recent turns; alerts on grooming, low mood, bullying."""

    categories = ('grooming', 'low_mood', 'bullying_repeat')  # each alerts, always

    def __init__(self, rules: Optional[ConversationRules], standardise: Callable[[str], str],
                 probabilities: Optional[Callable[[str], Dict[str, float]]] = None,
                 cue_model: Optional[CueModel] = None):
        self.rules = rules
        self.standardise = standardise  # the checker's normalise + rewrite
        self.probabilities = probabilities  # the classifier's P(category) of a text, or None
        self.cue_model = cue_model  # the learned cues of a turn (cues.py), or None
        self._children: Dict[str, _Child] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, config_dir: Path, standardise: Callable[[str], str],
             probabilities=None, analyse=None, salt: str = '',
             embedder=None) -> 'ConversationMonitor':
        """Read config_dir/conversation.yaml (no file: the stage is off).

        analyse (the checker's text -> (spaced, morphs)) lets the learned cues run; embedder
        (the robot's, shared) adds the turn's sentence embedding to their features.
        """
        from kidscare_llm.core.safety.policy import read_yaml
        path = Path(config_dir) / CONVERSATION_FILE
        rules = ConversationRules.parse(read_yaml(path), path) if path.is_file() else None
        cue_model = create_cue_model(rules and rules.cue_settings, analyse, salt, embedder)
        return cls(rules, standardise, probabilities, cue_model)

    @property
    def enabled(self) -> bool:
        """Whether the stage runs (conversation.yaml exists and says enabled)."""
        return self.rules is not None and self.rules.settings['enabled']

    def forget(self, user: str) -> None:
        """Drop what is kept about a child (the caregiver deleted the child's data)."""
        with self._lock:
            self._children.pop(user, None)

    def watch(self, user: str, session_id: str, text: str, verdict, store, alerts) -> list:
        """Add a child turn and raise the conversation alerts it completes; return them.

        The engine calls this once per child turn, flagged or not, before it stores the turn;
        store (SessionStore, or None) gives the days before, alerts (AlertLog) raises them.
        """
        if not self.enabled:
            return []
        try:
            found = self.observe(user, text, verdict=verdict,
                                 history=lambda: _past_turns(store, user, self.rules))
        except Exception:  # the child still gets an answer; the stage logs and carries on
            log.exception('conversation stage failed on a turn of %s', user)
            return []
        for alert in found:
            alerts.raise_alert(user, session_id, text, alert)
        return found

    def observe(self, user: str, text: str, now: Optional[float] = None, verdict=None,
                history: Optional[Callable[[], List[Tuple[str, float]]]] = None) -> list:
        """Add one child turn (history(): earlier turns, read at a child's first turn)."""
        if not self.enabled:
            return []
        now = time.time() if now is None else now
        with self._lock:
            child = self._children.get(user)
            if child is None:
                child = self._children[user] = _Child()
                for old_text, old_time in (history() if history else []):
                    self._add(child, old_text, old_time)
                    self._patterns(child)  # complete before this start: alerted then
            self._add(child, text, now, verdict)
            return self._patterns(child)

    def _add(self, child: _Child, text: str, when: float, verdict=None) -> None:
        spaced = self.standardise(text)
        cues = set(self.rules.cues(spaced))
        learned = self.rules.learned
        more = set()  # the models have read more ways to say it than the lists
        if learned and self.probabilities is not None:
            p = self.probabilities(text)
            more = {cue for cue, bars in learned.items()
                    if any(p.get(c, 0.0) >= bar for c, bar in bars.items())}
        if self.cue_model is not None:
            more |= self.cue_model.cues(text)
        if 'story' in cues:  # a film's sadness, tired after sport: not the child's hurt or mood
            more -= {'low', 'blame', 'hurt'}
        cues |= more
        before = child.turns[-1] if child.turns else None
        cues = _settle(cues, spaced, before, getattr(verdict, 'category', None))
        peer = self.rules.peer(spaced)  # who is named: a later "걔" or no name means them
        child.turns.append(Turn(text, when, frozenset(cues), peer))
        s = self.rules.settings
        while child.turns and (len(child.turns) > s['window_turns']
                               or child.turns[0].time < when - s['window_days'] * 86400):
            child.turns.pop(0)
            child.dropped += 1

    def _recent(self, child: _Child, category: str) -> List[Tuple[int, Turn]]:
        start = child.since.get(category, 0)
        return [(child.dropped + i, t) for i, t in enumerate(child.turns)
                if child.dropped + i >= start]

    def _patterns(self, child: _Child) -> List[ConversationAlert]:
        out = []
        for category, rule in (('grooming', self._grooming), ('low_mood', self._low_mood),
                               ('bullying_repeat', self._bullying)):
            recent = self._recent(child, category)
            found = rule(recent)
            if found:
                why, turns = found
                child.since[category] = child.dropped + len(child.turns)  # new evidence next
                first = recent[0][0]
                listed = '; '.join(f'turn {i - first + 1} "{t.text}" '
                                   f'({", ".join(sorted(t.cues - {"persist", "again"}))})'
                                   for i, t in turns)
                out.append(ConversationAlert(category, f'{category}: {why}: {listed}',
                                             tuple(t.text for _, t in turns)))
        return out

    def _grooming(self, recent):
        """Return (why, turns) of grooming, else None.

        An adult who is not a parent + isolation (a secret, meeting alone, a photo asked for,
        a stranger's ride) + one more cue (a stranger asking for a photo is two); without a
        word for an adult, a secret + another isolation + one more. A secret told within
        three turns after a surprise does not count, nor a ride or a meeting a parent set up.
        """
        stranger = any('stranger' in t.cues for _, t in recent)
        cued, kinds = [], set()
        for n, (i, t) in enumerate(recent):
            if 'meet' in t.cues and (kinds | t.cues) & {'adult'}:
                kinds.add('alone')  # an adult (this turn or before) asks to meet
            cues = set(t.cues) & (set(GROOMING_MORE) | {'adult', 'photo_ask', 'touch'})
            if 'secret' in cues and any('surprise' in u.cues for _, u in recent[max(0, n - 3):n]):
                cues.discard('secret')
            if cues:
                cued.append((i, t))
                kinds |= cues
        if any('arranged' in t.cues for _, t in recent):  # a parent set it up: not alone
            kinds -= {'alone', 'ride'}
        isolating = set(ISOLATING) | ({'ride'} if stranger else set())
        counted = kinds - {'adult'} if stranger else kinds - {'adult', 'photo_ask'}
        # whoever it is: kept from the parents, and alone with them or a photo, and a gift
        unnamed = 'secret' in kinds and kinds & isolating - {'secret'} and len(counted) >= 3
        if ('adult' in kinds or stranger or unnamed) and kinds & isolating and \
                len(counted) >= 2:  # someone the child does not know is a grown-up too
            return ('an adult who is not a parent with ' + ', '.join(
                sorted(kinds - {'adult'})), cued)
        return None

    def _low_mood(self, recent):
        """Return (why, turns) of low mood or self-blame said again (since feeling better)."""
        s = self.rules.settings
        last_ok = max((n for n, (_, t) in enumerate(recent) if 'recover' in t.cues), default=-1)
        low = [(i, t) for i, t in recent[last_ok + 1:] if t.cues & {'low', 'blame'}]
        blame = [x for x in low if 'blame' in x[1].cues]
        lasting = any(t.cues & {'persist', 'blame'} for _, t in low)
        if len(blame) >= s['blame_turns'] or (len(low) >= s['low_mood_turns'] and lasting) or \
                len(low) >= s['low_mood_turns_many'] > 0:  # turn after turn is lasting too
            return (f'low mood or self-blame in {len(low)} turns', low)
        return None

    def _bullying(self, recent):
        """Return (why, turns) of the same peer hurting the child again (걔: the last named).

        One turn that says it keeps happening ("예준이가 오늘도 때렸어") is enough, unless the
        one who did it is family, the child laughs, or they made up before.
        """
        s = self.rules.settings
        by_peer: Dict[str, List[Tuple[int, Turn]]] = {}
        last, made_up = '', set()
        for i, t in recent:
            peer = t.peer or last
            if t.peer:
                last = t.peer
            if 'resolved' in t.cues:
                by_peer.pop(peer, None)
                made_up.add(peer)
            elif 'hurt' in t.cues:
                by_peer.setdefault(peer, []).append((i, t))
        for peer, turns in by_peer.items():
            # a peer named in two turns is "again"; unnamed children need "또/맨날" said
            again = bool(peer) or any(t.cues & {'again', 'persist'} for _, t in turns)
            # "예준이가 오늘도 때렸어": the child says it keeps happening, in one turn
            said = 0 if peer in KIN or peer in made_up else sum(
                1 for _, t in turns if 'again' in t.cues and not LAUGH.search(t.text))
            if len(turns) >= s['bullying_turns_without_again'] or \
                    (len(turns) >= s['bullying_turns'] and again) or \
                    (said >= s['bullying_turns_said_again'] > 0):
                who = f'"{peer}"' if peer else 'the same children'
                return (f'{who} hurt the child in {len(turns)} turns', turns)
        return None


def _settle(cues: set, spaced: str, before: Optional[Turn], category: Optional[str]) -> set:
    """Return a turn's cues once the cues that take others away have had their say.

    An apology clears hurt; a parent told or has it (told) clears the secret; family is not an
    outsider unless someone else does it ("할머니 기도할 때 아저씨가…"); the family going too
    (together) clears being alone; a lesson retold (which goes on in a hypothetical turn)
    clears what happened; "오늘도 그랬어" (same) repeats the turn before; a self-harm line
    said as a joke still counts as low (category: the check's).
    """
    if 'resolved' in cues:
        cues.discard('hurt')  # an apology or a game both play
    if 'told' in cues:  # the child told a parent, or a parent has it: not kept from them
        cues -= {'secret', 'photo_ask'}
    if 'family' in cues and not cues & {'stranger', 'outsider'}:  # "우리 삼촌": family
        cues -= {'adult', 'stranger', 'secret', 'alone', 'ride', 'photo_ask'}
    if 'lesson' not in cues and before is not None and 'lesson' in before.cues and \
            HYPOTHETICAL.search(spaced):
        cues.add('lesson')  # the lesson goes on: "…하면 싫어요 하고 도망가래"
    if 'together' in cues:
        cues -= {'alone', 'ride'}  # the family or the group goes too
    if 'lesson' in cues:  # a safety lesson retold: nothing happened to the child
        cues -= set(GROOMING_MORE) | {'adult', 'stranger', 'photo_ask', 'touch', 'meet'}
    if category == 'self_harm':
        cues.add('low')
    if 'same' in cues and before is not None:  # "오늘도 그랬어": what the turn before said
        cues |= {'hurt', 'again'} if 'hurt' in before.cues else set()
        cues |= {'low', 'persist'} if before.cues & {'low', 'blame'} else set()
    return cues


def _past_turns(store, user: str, rules: ConversationRules) -> List[Tuple[str, float]]:
    """Return the child's turns of the last window_days from the session store, oldest first."""
    if store is None:
        return []
    since = time.time() - rules.settings['window_days'] * 86400
    turns = []
    for session_id, created, _ in store.session_rows(user):
        rows = [(r[2], r[3]) for r in store.transcript(session_id)
                if r[1] == 'user' and r[3] >= since]
        turns = rows + turns  # session_rows is newest first
        if created < since:
            break
    return turns[-rules.settings['window_turns']:]
