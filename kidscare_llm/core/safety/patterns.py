"""The conversation stage's learned pattern model: grooming, low mood, bullying from all cues.

The rules of conversation.py need the right cues in the right turns ("an adult" + "isolation"
+ one more); a new author's child says it in words no cue list has, and the pieces arrive as
probabilities below a cue's bar. This model reads every turn's reading (the cue model's P per
cue, the single-turn classifier's P per category, the regex cues) aggregated over the recent
turns (each P's highest and second highest, how many turns reach 0.35; which regex cues came
up and how often), and says P(grooming | low_mood | bullying_repeat | benign). It is a
logistic regression (scikit-learn, class-balanced) trained on the tuning conversations in
data/safety/train/conversations_*.jsonl, every prefix from the turn that completes a risky
one and every prefix of a look-alike, once, then cached. It alerts beside the rules, when a
pattern's P reaches conversation.yaml's pattern_model.threshold.
"""

from dataclasses import dataclass
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from kidscare_llm.core.errors import ConfigError

log = logging.getLogger(__name__)

LABELS = ('benign', 'grooming', 'low_mood', 'bullying_repeat')
CUE_BAR = 0.35  # a cue model P from which a turn counts as carrying the cue
MAX_COUNT = 3  # turns counted per cue: a long window of ordinary turns adds nothing more
Reading = Mapping[str, float]  # 'cue.secret': P, 'clf.bullying': P, 'rx.adult': 1.0 ...


@dataclass(frozen=True)
class PatternSettings:
    """conversation.yaml's pattern_model: on or off, threshold, C, the conversations' folder."""

    enabled: bool
    threshold: float
    c: float
    examples: Path
    alerts: Tuple[str, ...] = LABELS[1:]  # the patterns it may alert on (round 17: all)

    @classmethod
    def parse(cls, section, path: Path, default_folder: Path) -> 'PatternSettings':
        """Validate the section (None: off); ConfigError naming the fix."""
        if not section:
            return cls(False, 1.0, 1.0, default_folder)
        try:
            threshold, c = float(section.get('threshold', 0.8)), float(section.get('c', 0.3))
            alerts = tuple(str(a) for a in section.get('alerts', LABELS[1:]))
        except (AttributeError, TypeError, ValueError):
            threshold, c, alerts = -1.0, -1.0, ()
        if not (0 < threshold <= 1 and c > 0 and alerts and set(alerts) <= set(LABELS[1:])):
            raise ConfigError(f'{path}: pattern_model needs 0 < threshold <= 1, c > 0 and '
                              f'alerts: some of {", ".join(LABELS[1:])}; fix it')
        folder = section.get('examples')
        folder = path.parent / str(folder) if folder else default_folder
        enabled = bool(section.get('enabled', True))
        if enabled and not sorted(folder.glob('conversations_*.jsonl')):
            raise ConfigError(f'{folder}: no conversations_*.jsonl for the pattern model; add '
                              'them or set pattern_model.enabled: false')
        return cls(enabled, threshold, c, folder, alerts)


def features(readings: Sequence[Reading], keys: Sequence[str]) -> np.ndarray:
    """Return one row of aggregate features of the turns' readings (keys: the model's)."""
    out: List[float] = []
    for key in keys:
        values = sorted((r.get(key, 0.0) for r in readings), reverse=True) or [0.0]
        if key.startswith('cue.'):
            count = sum(v >= CUE_BAR for v in values)
            out += [values[0], values[1] if len(values) > 1 else 0.0,
                    min(count, MAX_COUNT) / MAX_COUNT]
        elif key.startswith('clf.'):
            out.append(values[0])
        else:  # a regex cue: said at all, and how often
            count = sum(v > 0 for v in values)
            out += [float(count > 0), min(count, MAX_COUNT) / MAX_COUNT]
    return np.asarray(out, dtype=np.float32)


def read_conversations(folder: Path) -> List[dict]:
    """Return the labelled conversations of folder/conversations_*.jsonl (ConfigError if bad)."""
    rows = []
    for path in sorted(folder.glob('conversations_*.jsonl')):
        for n, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                ok = row['label'] in LABELS and isinstance(row['turns'], list) and (
                    row['label'] == 'benign' or int(row['complete_at']) >= 1)
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                raise ConfigError(f'{path}:{n}: a conversation needs label ({", ".join(LABELS)}), '
                                  'turns and complete_at (a risky one); fix the line')
            rows.append(row)
    return rows


class PatternModel:
    """P(pattern) of a window of turns' readings (a linear model over features())."""

    def __init__(self, keys: Sequence[str], coef: np.ndarray, intercept: np.ndarray):
        self.keys = list(keys)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)

    def proba(self, readings: Sequence[Reading]) -> Dict[str, float]:
        """Return P of each label for these turns."""
        z = self.coef @ features(readings, self.keys) + self.intercept
        z = np.exp(z - z.max())
        return dict(zip(LABELS, map(float, z / z.sum())))

    @classmethod
    def train(cls, conversations: Sequence[dict],
              read: Callable[[Sequence[str]], List[Reading]], c: float) -> 'PatternModel':
        """Fit on every prefix of a look-alike and every prefix of a risky one from complete_at.

        read: a conversation's turns -> their readings, as the stage reads them one by one.
        """
        from sklearn.linear_model import LogisticRegression

        read_turns = [read(row['turns']) for row in conversations]
        keys = sorted({k for turns in read_turns for r in turns for k in r})
        x, y = [], []
        for row, turns in zip(conversations, read_turns):
            start = 1 if row['label'] == 'benign' else int(row['complete_at'])
            for k in range(start, len(turns) + 1):
                x.append(features(turns[:k], keys))
                y.append(LABELS.index(row['label']))
        fit = LogisticRegression(C=c, max_iter=3000, class_weight='balanced').fit(
            np.stack(x), np.asarray(y))
        coef = np.zeros((len(LABELS), len(x[0])), dtype=np.float32)
        intercept = np.full(len(LABELS), -30.0, dtype=np.float32)  # a label never seen: P 0
        for i, label in enumerate(fit.classes_):
            coef[label], intercept[label] = fit.coef_[i], fit.intercept_[i]
        return cls(keys, coef, intercept)

    @classmethod
    def load_or_train(cls, settings: PatternSettings,
                      read: Callable[[Sequence[str]], List[Reading]],
                      depends: Sequence[Path], salt: str, cache: Optional[Path]
                      ) -> 'PatternModel':
        """Return the cached model, training it when the conversations or what reads them changed.

        depends: files whose change changes the readings (the cue lists, the classifier's and
        the cue model's training lines), hashed with the conversations and salt.
        """
        rows = read_conversations(settings.examples)
        digest = hashlib.sha256(json.dumps([settings.c, salt, rows], ensure_ascii=False)
                                .encode('utf-8'))
        for path in sorted(depends):
            digest.update(path.read_bytes())
        path = cache / f'safety-patterns-{digest.hexdigest()[:16]}.npz' if cache else None
        if path is not None and path.is_file():
            try:
                with np.load(path) as data:
                    return cls(list(data['keys']), data['coef'], data['intercept'])
            except (OSError, ValueError, KeyError) as exc:
                log.warning('pattern model cache %s unreadable (%s): training again', path, exc)
        log.info('training the conversation pattern model on %d conversations (once; cached)',
                 len(rows))
        model = cls.train(rows, read, settings.c)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(path, keys=np.asarray(model.keys), coef=model.coef,
                         intercept=model.intercept)
            except OSError as exc:
                log.warning('cannot cache the pattern model in %s (%s)', path.parent, exc)
        return model
