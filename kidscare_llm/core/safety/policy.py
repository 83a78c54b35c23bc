"""policy.yaml, parsed once: actions, replies, context rules and the stages' settings.

SafetyPolicy.read() validates the whole file and compiles its patterns up front: a bad edit
stops the robot at start-up with a ConfigError naming the file, the setting and the fix. The
parsed policy is frozen. Its own patterns are applied here too (standardise, risk markers, the
context rules that quiet categories), so the checker only orders the stages.
"""

from dataclasses import dataclass
from pathlib import Path
from re import Pattern
from types import MappingProxyType
from typing import Any, FrozenSet, Mapping, Optional, Set, Tuple

import yaml

from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.paths import share_dir
from kidscare_llm.core.safety.lexicon import (alternation, morph_regex, spaced_phrase_regex,
                                              strings)
from kidscare_llm.core.safety.normalise import compact, SPACES
from kidscare_llm.core.safety.settings import (classifier_settings, ClassifierSettings,
                                               read_alert_evidence, similarity_settings,
                                               SimilaritySettings)

POLICY_FILE = 'policy.yaml'
ACTIONS = ('guide', 'redirect', 'refuse', 'refuse_alert')
# policy.yaml: <kind>_markers, <kind>_categories and <kind>_exempt (patterns that cancel it)
QUIET_RULES = ('lesson', 'fiction', 'resolved', 'supervised', 'question', 'mutual')
REGEX_MARKERS = ('question', 'mutual')  # their markers are regexes on the text without spaces
LANGS = ('ko', 'en')


def default_safety_dir() -> Path:
    """Return the packaged config/safety folder (source tree, pip install -e or colcon)."""
    return share_dir() / 'config' / 'safety'


def default_train_dir() -> Path:
    """Return the classifier's packaged training lines, data/safety/train (JSONL files)."""
    return share_dir() / 'data' / 'safety' / 'train'


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping; ConfigError naming the file and the fix when it is not one."""
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8-sig'))
    except FileNotFoundError:
        raise ConfigError(f'{path}: file not found; restore it from the packaged '
                          'config/safety or remove its category from policy.yaml') from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f'{path}: cannot read ({exc}); save it as UTF-8 text') from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        raise ConfigError(f'{path}: invalid YAML{where}; fix the syntax (quote entries that '
                          'hold : # [ ] { } or start with * & !)') from None
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a YAML mapping (key: value lines); fix the file')
    return data


@dataclass(frozen=True)
class QuietRule:
    """A context rule: its markers quiet categories on input, unless an exempt pattern is there.

    lesson: the child repeats a taught rule; fiction: a film, game or story; resolved: a
    quarrel already made up; supervised: a grown-up does it with the child; question: the
    child checks a safety rule about what someone might do ("모르는 사람이 주소 물어보면 말하면
    안 되는 거 맞지?"); mutual: a game both play (names called back, both laughing).
    """

    kind: str
    markers: Pattern
    categories: FrozenSet[str]
    exempt: Optional[Pattern]


@dataclass(frozen=True)
class RewriteRule:
    """A dialect, spoken or code-switched form and its standard Korean ("가고시퍼" -> "가고 싶어")."""

    pattern: str
    regex: Pattern
    replacement: str


@dataclass(frozen=True)
class SafetyPolicy:
    """What policy.yaml says, validated and compiled (see the comments in policy.yaml)."""

    path: Path
    priority: Tuple[str, ...]  # every category, the first that matches wins
    actions: Mapping[str, str]
    alerts: Mapping[str, bool]
    guidance: Mapping[str, Mapping[str, str]]  # category -> language -> note for the model
    replies: Mapping[str, Mapping[str, Tuple[str, ...]]]  # category|output|passage -> lang
    guard: Optional[Pattern]  # guidance markers: the model's sentence steers to safety
    quiet: Tuple[QuietRule, ...]
    rewrite: Tuple[RewriteRule, ...]
    rewrite_any: Optional[Pattern]
    risk: Optional[Pattern]  # the child's intent, wish, request, action or disclosure
    risk_morph: Optional[Pattern]
    weak_risk: Optional[Pattern]
    hearsay: Optional[Pattern]
    mention: Optional[Pattern]  # asks about or reports a topic
    mention_categories: FrozenSet[str]
    mention_exempt: Optional[Pattern]
    peer: Optional[Pattern]  # other children do it: peer_categories become peer_category
    peer_categories: FrozenSet[str]
    peer_category: str
    peer_exempt: Optional[Pattern]
    injection: Optional[Pattern]  # a retrieved passage giving the model orders
    similarity: SimilaritySettings
    classifier: ClassifierSettings
    joke: Optional[Pattern] = None  # a self-harm wish said as a joke: checked, no alert
    joke_exempt: Optional[Pattern] = None  # "농담 아니야": not a joke
    alert_evidence: float = 1.0  # P(self_harm) + P(abuse) that alerts under any category

    @classmethod
    def read(cls, config_dir: Path) -> 'SafetyPolicy':
        """Read and validate config_dir/policy.yaml (ConfigError naming the fix)."""
        if not config_dir.is_dir():
            raise ConfigError(f'{config_dir}: safety config folder not found; point safety '
                              'config at a folder with policy.yaml and one YAML per category')
        return _parse(read_yaml(config_dir / POLICY_FILE), config_dir)

    def standardise(self, spaced: str) -> str:
        """Rewrite dialect and spoken forms to standard Korean (policy.yaml rewrite)."""
        if self.rewrite_any is None or not self.rewrite_any.search(spaced):
            return spaced
        for rule in self.rewrite:
            if rule.regex.search(spaced):
                spaced = SPACES.sub(' ', rule.regex.sub(rule.replacement, spaced)).strip()
        return spaced

    def risk_marker(self, spaced: str, morphs: str, mention: bool = False) -> str:
        """Return the child's intent/wish/request/disclosure marker in the text ('' if none).

        A marker followed by a hearsay ending is someone else's; a weak one (weak_risk: a bare
        "나", "me") does not count when the sentence reports or asks about something (mention).
        """
        weak = ''
        for rx, text in ((self.risk, spaced), (self.risk, compact(spaced)),
                         (self.risk_morph, morphs)):
            for m in (rx.finditer(text) if rx is not None else ()):
                marker = m.group().strip()
                if rx is self.risk_morph and self.hearsay is not None and \
                        self.hearsay.match(text, m.end()):
                    continue
                if self.weak_risk is not None and self.weak_risk.fullmatch(marker):
                    weak = weak or marker
                    continue
                return marker
        return '' if mention else weak

    def context(self, spaced: str, packed: str, morphs: str) -> Tuple[Set[str], str]:
        """Return (categories quieted for this sentence, the child's risk marker or '').

        Context rules (QUIET_RULES: lesson, fiction, resolved, ...) quiet their categories; a
        sentence that only asks about or reports a topic (a mention without a risk marker)
        quiets the mention categories. Self-harm and abuse are never listed there.
        """
        quiet = {c for rule in self.quiet if rule.markers.search(packed)
                 and not found(rule.exempt, spaced, packed) for c in rule.categories}
        mention = found(self.mention, spaced, packed) and \
            not found(self.mention_exempt, spaced, packed)
        risk = self.risk_marker(spaced, morphs, mention)
        if not risk and mention:
            quiet |= self.mention_categories
        return quiet, risk

    def peers(self, spaced: str, packed: str) -> bool:
        """Return True when other children are the ones doing it (and it is not a threat)."""
        return found(self.peer, spaced, packed) and not self.own_intent(spaced, packed)

    def own_intent(self, spaced: str, packed: str) -> bool:
        """Return True when the child says what they will do ("때려 줄 거야", "I'll")."""
        return found(self.peer_exempt, spaced, packed)


def found(rx: Optional[Pattern], spaced: str, packed: str) -> bool:
    """Return True when the pattern matches the text with or without spaces."""
    return rx is not None and (rx.search(spaced) or rx.search(packed)) is not None


def _parse(data: dict, config_dir: Path) -> SafetyPolicy:
    """Validate policy.yaml's mapping and compile its patterns (ConfigError naming the fix)."""
    path = config_dir / POLICY_FILE
    cats = data.get('categories')
    if not isinstance(cats, dict) or not cats:
        raise ConfigError(f'{path}: "categories" must map each category to '
                          '{action: guide|redirect|refuse|refuse_alert}; add it')
    for name, entry in cats.items():
        action = (entry or {}).get('action') if isinstance(entry, dict) else None
        if action not in ACTIONS:
            raise ConfigError(f'{path}: category {name}: action {action!r} is unknown; use one '
                              f'of {", ".join(ACTIONS)}')
    priority = tuple(data.get('priority') or cats)
    if set(priority) != set(cats) or len(priority) != len(cats):
        raise ConfigError(f'{path}: "priority" must list every category exactly once '
                          f'({", ".join(cats)}); fix it')
    for kind in QUIET_RULES + ('mention', 'peer'):
        unknown = set(data.get(f'{kind}_categories') or []) - set(cats)
        if kind == 'peer' and data.get('peer_markers'):
            unknown |= {str(data.get('peer_category', 'bullying'))} - set(cats)
        if unknown:
            what = 'peer_categories or peer_category' if kind == 'peer' else f'{kind}_categories'
            raise ConfigError(f'{path}: {what} {sorted(unknown)} are not categories; fix the '
                              'list')
    classifier = classifier_settings(data.get('classifier') or {}, config_dir, path,
                                     default_train_dir())
    replies = data.get('replies')
    if not isinstance(replies, dict):
        raise ConfigError(f'{path}: "replies" (safe lines per category and language) is '
                          'missing; add it')
    lines = {}
    for name in list(cats) + ['output', 'passage']:
        lines[name] = {}
        for lang in LANGS:
            got = (replies.get(name) or {}).get(lang)
            if not (isinstance(got, list) and got
                    and all(isinstance(x, str) and x.strip() for x in got)):
                raise ConfigError(f'{path}: replies.{name}.{lang} must be a non-empty list of '
                                  'lines; add one')
            lines[name][lang] = tuple(got)

    def patterns(key: str, phrases: bool = False) -> Optional[Pattern]:
        items = strings(data, key, path)
        return alternation([spaced_phrase_regex(g) for g in items] if phrases else items,
                           path, key)

    quiet = []
    for kind in QUIET_RULES:
        markers = patterns(f'{kind}_markers', phrases=kind not in REGEX_MARKERS)
        exempt = patterns(f'{kind}_exempt')
        if markers is not None:
            quiet.append(QuietRule(kind, markers,
                                   frozenset(data.get(f'{kind}_categories') or []), exempt))
    rewrite = data.get('rewrite') or {}
    if not isinstance(rewrite, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in rewrite.items()):
        raise ConfigError(f'{path}: "rewrite" must map regex patterns to replacement strings; '
                          'fix it')
    return SafetyPolicy(
        path=path, priority=priority,
        actions=_frozen({c: cats[c]['action'] for c in priority}),
        alerts=_frozen({c: bool(cats[c].get('alert', cats[c]['action'] == 'refuse_alert'))
                        for c in priority}),
        guidance=_frozen({c: _frozen(_guidance(cats[c].get('guidance'))) for c in priority}),
        replies=_frozen({k: _frozen(v) for k, v in lines.items()}),
        guard=patterns('guidance_markers', phrases=True), quiet=tuple(quiet),
        rewrite=tuple(RewriteRule(k, alternation([k], path, 'rewrite'), v)
                      for k, v in rewrite.items()),
        rewrite_any=alternation(list(rewrite), path, 'rewrite'),
        risk=patterns('risk_markers'),
        risk_morph=alternation([morph_regex(m, path) for m in strings(data, 'risk_morphs', path)],
                               path, 'risk_morphs'),
        weak_risk=patterns('weak_risk'), hearsay=patterns('hearsay_after'),
        mention=patterns('mention_markers'),
        mention_categories=frozenset(data.get('mention_categories') or []),
        mention_exempt=patterns('mention_exempt'), peer=patterns('peer_markers'),
        peer_categories=frozenset(data.get('peer_categories') or []),
        peer_category=str(data.get('peer_category', 'bullying')),
        peer_exempt=patterns('peer_exempt'), injection=patterns('injection'),
        similarity=similarity_settings(data.get('similarity') or {}, path), classifier=classifier,
        joke=patterns('joke_markers'), joke_exempt=patterns('joke_exempt'),
        alert_evidence=read_alert_evidence(data.get('alert_evidence', 1.0), path))


def _frozen(mapping: dict) -> Mapping:
    return MappingProxyType(dict(mapping))


def _guidance(note: Any) -> dict:
    """Return a category's guidance note per language (a plain string is the Korean one)."""
    if isinstance(note, dict):
        return {str(k): str(v) for k, v in note.items() if v}
    return {'ko': str(note)} if note else {}
