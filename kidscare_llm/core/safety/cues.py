"""The conversation stage's learned cues: which pieces of a pattern one child turn carries.

The regexes of conversation.yaml know the wordings someone wrote down; children say "카톡 다
지우라 칸다" or "디코로 옮기재". This model has read several hundred lines per cue (secret,
isolate, photo, gift, special, low, blame, hurt, and look-alikes labelled benign) written
blind by other authors (data/safety/cues/*.jsonl); it is the single-turn classifier's
features and trainer (classifier.py) on other labels, trained once and cached. A cue counts
when its probability reaches the threshold of conversation.yaml's cue_classifier section.
"""

from dataclasses import dataclass
import json
import logging
from pathlib import Path
import threading
from typing import Callable, Dict, FrozenSet, Mapping, Optional, Tuple

from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.paths import cache_dir

log = logging.getLogger(__name__)


def default_cues_dir() -> Path:
    """Return the packaged cue lines, data/safety/cues (beside the classifier's train lines)."""
    from kidscare_llm.core.safety.policy import default_train_dir

    return default_train_dir().parent / 'cues'


@dataclass(frozen=True)
class CueSettings:
    """conversation.yaml's cue_classifier: on or off, threshold, model label -> stage cue."""

    enabled: bool
    threshold: float
    labels: Mapping[str, Tuple[str, ...]]  # e.g. isolate -> (alone,), photo -> (photo_ask,)
    examples: Path
    thresholds: Mapping[str, float] = None  # a label's own threshold, over `threshold`
    embedding: float = 0.0  # weight of the turn's sentence embedding among the features

    def bar(self, label: str) -> float:
        """Return the probability at which a label adds its cues."""
        return (self.thresholds or {}).get(label, self.threshold)

    @classmethod
    def parse(cls, section, path: Path, cues: FrozenSet[str]) -> 'CueSettings':
        """Validate the section (None: off); ConfigError naming the fix."""
        if not section:
            return cls(False, 1.0, {}, default_cues_dir(), {})
        try:
            threshold = float(section.get('threshold', 0.5))
            labels = {str(k): tuple([v] if isinstance(v, str) else v)
                      for k, v in (section.get('labels') or {}).items()}
            own = {str(k): float(v) for k, v in (section.get('thresholds') or {}).items()}
            embedding = float(section.get('embedding', 0.0))
        except (AttributeError, TypeError, ValueError):
            raise ConfigError(f'{path}: cue_classifier needs threshold, labels: {{label: cue '
                              'or [cues]}}, thresholds: {{label: P}} and embedding: a weight; '
                              'fix it') from None
        unknown = {c for v in labels.values() for c in v} - set(cues)
        if not all(0 < x <= 1 for x in [threshold, *own.values()]) or unknown or \
                not 0 <= embedding <= 10:
            raise ConfigError(f'{path}: cue_classifier needs 0 < threshold <= 1, 0 <= embedding '
                              f'<= 10 and labels mapped to known cues (unknown: '
                              f'{sorted(unknown)}); fix it')
        folder = section.get('examples')
        folder = path.parent / str(folder) if folder else default_cues_dir()
        enabled = bool(section.get('enabled', True))
        if enabled and not folder.is_dir():
            raise ConfigError(f'{folder}: cue lines folder not found; add JSONL lines there '
                              'or set cue_classifier.enabled: false')
        return cls(enabled, threshold, labels, folder, own, embedding)


class CueModel:
    """Lazily trained cue classifier: cues(text) returns the stage's cues a turn carries."""

    def __init__(self, settings: CueSettings,
                 analyse: Callable[[str], Tuple[str, str]], salt: str = '', embedder=None):
        self.settings = settings
        self.analyse = analyse  # the checker's (spaced, morphs) of a text
        self.salt = salt
        self.embedder = embedder  # the robot's (shared with retrieval and the checker), or None
        self._model = None
        self._lock = threading.Lock()

    def model(self):
        """Return the classifier (trained on first use, then read from the cache)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from kidscare_llm.core.safety.classifier import SafetyClassifier

                    self._model = SafetyClassifier.load_or_train(
                        self.settings.examples, self.analyse, 16, 10.0, cache_dir(),
                        json.dumps(['cues', self.salt], ensure_ascii=False), self.embedder,
                        self.settings.embedding)
        return self._model

    def probabilities(self, text: str) -> Dict[str, float]:
        """Return P(label) of one turn over the model's labels."""
        model = self.model()
        vector = None if model.dense is None else self.embedder.query(text)
        return dict(zip(model.classes, map(float, model.proba(*self.analyse(text), vector))))

    def cues(self, text: str) -> FrozenSet[str]:
        """Return the stage cues of the labels at or above the threshold."""
        if not self.settings.enabled:
            return frozenset()
        return self.cues_of(self.probabilities(text))

    def cues_of(self, p: Mapping[str, float]) -> FrozenSet[str]:
        """Return the stage cues of these label probabilities (a turn's, computed once)."""
        settings = self.settings
        return frozenset(cue for label, x in p.items()
                         if x >= settings.bar(label) for cue in settings.labels.get(label, ()))


def create(settings: Optional[CueSettings], analyse, salt: str = '',
           embedder=None) -> Optional[CueModel]:
    """Return a CueModel (reading embedder's vectors when given), or None when it is off."""
    if settings is None or not settings.enabled or analyse is None:
        return None
    return CueModel(settings, analyse, salt, embedder)
