"""Conversation-level risk: patterns a child tells in pieces, over several turns and days.

No single line of "아저씨가 사탕 줬어" … "엄마한테는 비밀이래" … "내일 차 타고 어디 가자고 했어"
is alarming; together they are grooming. Likewise a low mood or self-blame said again and
again, or the same classmate hurting the child again. The per-utterance checker cannot see
these, so this stage keeps, per child, the recent child turns (rebuilt from the session store
at the first turn after a start, `window_days` back) with the cues each one carries (regexes
in config/safety/conversation.yaml), and raises an alert of its own category (grooming,
low_mood, bullying_repeat) whose reason lists the turns that made the pattern. The patterns
are rules an operator can read and change (pattern_rules.py); the cues come from the regex
lists (conversation_rules.py reads them) and from two learned models (the classifier's
categories, and the cue model of cues.py). Beside the rules, a learned pattern model
(patterns.py) reads all of a turn's cues and probabilities over the recent turns for grooming.
"""

from dataclasses import dataclass, field
import logging
from pathlib import Path
import threading
import time
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from kidscare_llm.core.safety.conversation_rules import CONVERSATION_FILE, ConversationRules, KIN
from kidscare_llm.core.safety.cues import create as create_cue_model, CueModel
from kidscare_llm.core.safety.pattern_rules import bullying, grooming, low_mood, settle, vetoed
from kidscare_llm.core.safety.patterns import PatternModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    """One child turn as this stage remembers it."""

    text: str
    time: float
    cues: FrozenSet[str]
    peer: str = ''  # who hurt the child ('' none named; a pronoun resolves to the last one)
    reading: Mapping[str, float] = field(default_factory=dict)  # the pattern model's input


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
        self._patterns_model: Optional[PatternModel] = None
        self.depends: Sequence[Path] = ()  # files the readings depend on (the model's cache key)
        self.salt = ''

    @classmethod
    def load(cls, config_dir: Path, standardise: Callable[[str], str],
             probabilities=None, analyse=None, salt: str = '',
             embedder=None, examples: Optional[Path] = None) -> 'ConversationMonitor':
        """Read config_dir/conversation.yaml (no file: the stage is off).

        analyse (the checker's text -> (spaced, morphs)) lets the learned cues run; embedder
        (the robot's, shared) adds the turn's sentence embedding to their features; examples
        (the classifier's lines) is among what the pattern model's readings depend on.
        """
        from kidscare_llm.core.safety.policy import read_yaml
        path = Path(config_dir) / CONVERSATION_FILE
        rules = ConversationRules.parse(read_yaml(path), path) if path.is_file() else None
        cue_model = create_cue_model(rules and rules.cue_settings, analyse, salt, embedder)
        monitor = cls(rules, standardise, probabilities, cue_model)
        monitor.salt = f'{salt} {getattr(embedder, "name", "")}'
        folders = [examples, rules.cue_settings.examples if rules and rules.cue_settings else None]
        monitor.depends = [p for p in (path, Path(config_dir) / 'policy.yaml') if p.is_file()] + [
            f for folder in folders if folder for f in sorted(Path(folder).glob('*.jsonl'))
            if not f.name.startswith('conversations')]
        return monitor

    def pattern_model(self) -> Optional[PatternModel]:
        """Return the learned pattern model (trained on first use, then cached), None when off."""
        settings = self.rules.pattern_settings if self.rules else None
        if settings is None or not settings.enabled:
            return None
        if self._patterns_model is None:
            from kidscare_llm.core.paths import cache_dir
            self._patterns_model = PatternModel.load_or_train(
                settings, self._read_conversation, self.depends, self.salt, cache_dir())
        return self._patterns_model

    def _read_conversation(self, texts: Sequence[str]) -> List[Dict[str, float]]:
        """Return the readings of one conversation's turns, read as the stage reads them."""
        child = _Child()
        for n, text in enumerate(texts):
            self._add(child, text, float(n))
        return [dict(t.reading) for t in child.turns]

    def read(self, text: str, spaced: Optional[str] = None) -> Dict[str, float]:
        """Return a turn's reading: its regex cues, the cue model's and classifier's P."""
        spaced = self.standardise(text) if spaced is None else spaced
        reading = {f'rx.{c}': 1.0 for c in self.rules.cues(spaced)}
        if self.probabilities is not None:
            reading.update((f'clf.{c}', p) for c, p in self.probabilities(text).items())
        if self.cue_model is not None:  # create() gives None when it is off
            reading.update((f'cue.{c}', p) for c, p in self.cue_model.probabilities(text).items())
        return reading

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
        reading = self.read(text, spaced)
        cues = {k[3:] for k in reading if k.startswith('rx.')}
        more = {cue for cue, bars in self.rules.learned.items()  # the models have read more
                if any(reading.get(f'clf.{c}', 0.0) >= bar for c, bar in bars.items())}
        if self.cue_model is not None:
            more |= self.cue_model.cues_of({k[4:]: p for k, p in reading.items()
                                            if k.startswith('cue.')})
        if 'story' in cues:  # a film's sadness, tired after sport: not the child's hurt or mood
            more -= {'low', 'blame', 'hurt'}
        cues |= more
        before = child.turns[-1] if child.turns else None
        kin_before = next((t for t in reversed(child.turns)
                           if t.cues & {'family', 'outsider'}), None)
        cues = settle(cues, spaced, before, getattr(verdict, 'category', None), kin_before)
        peer = self.rules.peer(spaced)  # who is named: a later "걔" or no name means them
        named = next((t.peer for t in reversed(child.turns) if t.peer), '')
        kin = peer.split()[-1] if peer else ''
        if kin in KIN and named.endswith(f' {kin}'):
            peer = named  # "6학년 형이 …" then "그 형이 또 …": the same older child
        reading = {**{k: p for k, p in reading.items() if not k.startswith('rx.')},
                   **{f'rx.{c}': 1.0 for c in cues}}  # the cues as settled
        child.turns.append(Turn(text, when, frozenset(cues), peer, reading))
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
        for category, rule in (('grooming', grooming), ('low_mood', low_mood),
                               ('bullying_repeat', bullying)):
            recent = self._recent(child, category)
            found = rule(recent, self.rules.settings)
            if found:
                why, turns = found
                child.since[category] = child.dropped + len(child.turns)  # new evidence next
                first = recent[0][0]
                listed = '; '.join(f'turn {i - first + 1} "{t.text}" '
                                   f'({", ".join(sorted(t.cues - {"persist", "again"}))})'
                                   for i, t in turns)
                out.append(ConversationAlert(category, f'{category}: {why}: {listed}',
                                             tuple(t.text for _, t in turns)))
        model = self.pattern_model()
        for category in () if model is None else self.rules.pattern_settings.alerts:
            alert = _learned_alert(model, category, self._recent(child, category),
                                   self.rules.pattern_settings.threshold)
            if alert is not None and category not in {a.category for a in out}:
                child.since[category] = child.dropped + len(child.turns)
                out.append(alert)
        return out


def _learned_alert(model: PatternModel, category: str, recent: List[Tuple[int, Turn]],
                   threshold: float) -> Optional[ConversationAlert]:
    """Return the pattern model's alert of a category over these turns, or None."""
    if len(recent) < 2 or vetoed(category, recent):
        return None  # one line is the single-line check's to judge; vetoed: the rules know
    p = model.proba([t.reading for _, t in recent])[category]
    if p < threshold:
        return None
    turns = [(i, t) for i, t in recent if t.cues - {'persist', 'again', 'story', 'told'}] or \
        recent[-1:]
    first = recent[0][0]
    listed = '; '.join(f'turn {i - first + 1} "{t.text}" ({", ".join(sorted(t.cues))})'
                       for i, t in turns)
    return ConversationAlert(category, f'{category}: the pattern model reads {category} '
                             f'({p:.2f}) in the recent turns: {listed}',
                             tuple(t.text for _, t in turns))


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
