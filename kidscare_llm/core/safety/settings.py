"""The learned and similarity stages' settings of policy.yaml, validated.

Split from policy.py, which reads the rest of the file: these are numbers an operator tunes
(thresholds, model size, the embedding's weight), each checked against its range at start-up.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List

from kidscare_llm.core.errors import ConfigError


@dataclass(frozen=True)
class SimilaritySettings:
    """The similarity stage: thresholds of the nearest risky exemplar (see similarity.py)."""

    enabled: bool
    threshold: float
    threshold_en: float  # for ASCII-only utterances (English has fewer exemplars)
    min_chars: int  # shorter utterances are left to the lexicon
    margin: float  # how much closer than the nearest benign exemplar


@dataclass(frozen=True)
class ClassifierSettings:
    """The learned stage (classifier.py): its training lines, model size and threshold."""

    enabled: bool
    threshold: float  # flag when P(not benign) >= threshold
    dims_log2: int
    c: float
    examples: Path  # folder of labelled JSONL lines
    min_category: float = 0.0  # and P(its category) >= this: not spread over several
    strict_threshold: float = 0.7  # the threshold for a child a caregiver set to strict
    embedding: float = 0.0  # weight of the robot's sentence embedding in the features; 0: off
    # P(benign) from which the model overrules a morpheme or topic-word match of the lexicon
    # (1: never), unless P(self_harm) + P(abuse) reaches overrule_guard or the sentence has
    # fewer than overrule_words words ("왕따 당했어": the match is all there is to read)
    overrule: float = 1.0
    overrule_guard: float = 0.2
    overrule_words: int = 6
    # the model's category replaces the lexicon's when P(it) >= refile and P(the lexicon's) <
    # refile_below (1: never); a caregiver alert already raised is kept (learned.py)
    refile: float = 1.0
    refile_below: float = 0.1
    # overrule for a phrase, word or regex (the exact wording), from a surer P(benign)
    overrule_exact: float = 1.0
    # the bar for sentences of overrule_words words or more (twice as many in English): the
    # model is surer on those, overconfident on short lines unlike its training
    threshold_long: float = 0.9


def read_alert_evidence(value: Any, path: Path) -> float:
    """Return alert_evidence, a probability in (0, 1] (1 turns the cross-category alert off)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise ConfigError(f'{path}: alert_evidence must be a number in (0, 1] (1: off); fix it')
    return value


def _numbers(section: dict, defaults: dict, path: Path, what: str, rule: str) -> List[Any]:
    """Return the section's values converted like their defaults; ConfigError when not numbers."""
    if not isinstance(section, dict):
        raise ConfigError(f'{path}: "{what}" must be a mapping ({", ".join(defaults)}); fix it')
    try:
        return [type(d)(section.get(k, d)) if d is not None else section.get(k)
                for k, d in defaults.items()]
    except (TypeError, ValueError):
        raise ConfigError(f'{path}: {what} needs {rule}; fix the values') from None


def classifier_settings(section: dict, config_dir: Path, path: Path,
                        default_folder: Path) -> ClassifierSettings:
    """Return policy.yaml's classifier section, validated (ConfigError naming the fix).

    examples: an operator's own folder, relative to the config folder; default_folder
    otherwise (the packaged lines).
    """
    rule = ('0 < strict_threshold <= threshold < 1, 0 <= min_category < 1, dims_log2 10-22, '
            'c > 0, embedding >= 0, 0 < overrule <= 1, 0 < overrule_guard <= 1, '
            'overrule_words >= 1, 0 < refile <= 1, 0 < refile_below <= 1, '
            '0 < overrule_exact <= 1, strict_threshold <= threshold_long < 1')
    enabled, threshold, dims, c, examples, min_category, strict, embedding, overrule, guard, \
        words, refile, below, exact = _numbers(
            section, {'enabled': False, 'threshold': 0.9, 'dims_log2': 16, 'c': 10.0,
                      'examples': None, 'min_category': 0.0, 'strict_threshold': 0.7,
                      'embedding': 0.0, 'overrule': 1.0, 'overrule_guard': 0.2,
                      'overrule_words': 6, 'refile': 1.0, 'refile_below': 0.1,
                      'overrule_exact': 1.0},
            path, 'classifier', rule)
    strict = strict if 'strict_threshold' in section else min(strict, threshold)
    long, = _numbers(section, {'threshold_long': threshold}, path, 'classifier', rule)
    if not (0.0 < strict <= threshold < 1.0 and strict <= long < 1.0 and 0.0 <= min_category < 1.0
            and 10 <= dims <= 22 and c > 0 and embedding >= 0 and 0.0 < overrule <= 1.0
            and 0.0 < guard <= 1.0 and words >= 1 and 0.0 < refile <= 1.0
            and 0.0 < below <= 1.0 and 0.0 < exact <= 1.0):
        raise ConfigError(f'{path}: classifier needs {rule}; fix the values')
    folder = config_dir / str(examples) if examples else default_folder
    if enabled and not folder.is_dir():
        raise ConfigError(f'{folder}: classifier examples folder not found; add JSONL '
                          'example lines there or set classifier.enabled: false')
    return ClassifierSettings(enabled, threshold, dims, c, folder, min_category, strict, embedding,
                              overrule, guard, words, refile, below, exact, long)


def similarity_settings(section: dict, path: Path) -> SimilaritySettings:
    """Return policy.yaml's similarity section, validated (ConfigError naming the fix)."""
    rule = '0 <= threshold, threshold_en <= 1 and min_chars >= 0'
    enabled, threshold, threshold_en, min_chars, margin = _numbers(
        section, {'enabled': True, 'threshold': 0.5, 'threshold_en': None, 'min_chars': 0,
                  'margin': 0.05}, path, 'similarity', rule)
    threshold_en = threshold if threshold_en is None else threshold_en
    try:
        threshold_en = float(threshold_en)
    except (TypeError, ValueError):
        raise ConfigError(f'{path}: similarity needs {rule}; fix the values') from None
    if not (0.0 <= threshold <= 1.0 and 0.0 <= threshold_en <= 1.0 and min_chars >= 0):
        raise ConfigError(f'{path}: similarity needs {rule}; fix the values')
    return SimilaritySettings(enabled, threshold, threshold_en, min_chars, margin)
