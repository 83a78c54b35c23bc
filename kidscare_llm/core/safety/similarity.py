"""The similarity stage: the child's words against labelled exemplar sentences (TF-IDF).

The lexicon catches the words an operator wrote down; a paraphrase ("힘들어서 끝내고 싶어")
slips past it. Every category's YAML lists risky exemplars and benign.yaml lists everyday
look-alikes; a sentence is compared with all of them by cosine over TF-IDF weights of
character 2-3-grams and Kiwi lemmas (plain numpy, no model). The checker flags it when the
nearest risky exemplar is close enough and clearly closer than the nearest benign one.
"""

from collections import Counter
from dataclasses import dataclass
import math
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from kidscare_llm.core.safety.normalise import compact, normalise

Tokens = Sequence[Tuple[str, str]]  # Kiwi's (form, tag) pairs
LEMMA_TAGS = ('NN', 'VV', 'VA', 'VX', 'XR', 'MA', 'SL', 'NP')
BENIGN = 'benign'


def features(spaced: str, tokens: Optional[Tokens] = None) -> Counter:
    """Return the counted features of a text: character 2-3-grams, lemmas and lemma pairs."""
    packed = compact(spaced)
    feats = Counter(packed[i:i + n] for n in (2, 3) for i in range(len(packed) - n + 1))
    if tokens is not None:
        lemmas = [f'{f}/{t[:2]}' for f, t in tokens if t[:2] in LEMMA_TAGS]
        feats.update('@' + x for x in lemmas)
        feats.update(f'@{a}+{b}' for a, b in zip(lemmas, lemmas[1:]))
    return feats


@dataclass(frozen=True)
class Nearest:
    """The nearest risky exemplar of a text, and how close the nearest benign one is."""

    label: str
    text: str
    score: float
    benign_score: float


class ExemplarIndex:
    """TF-IDF cosine nearest exemplar over character 2-3-grams and Kiwi lemmas (numpy)."""

    def __init__(self, texts: List[str], labels: List[str], tokens: List[Tokens]):
        self.labels = np.array(labels)
        self.texts = texts
        docs = [features(t, tok) for t, tok in zip(texts, tokens)]
        df = Counter(f for d in docs for f in d)
        n = len(docs)
        self.idf = {f: math.log((1 + n) / (1 + c)) + 1.0 for f, c in df.items()}
        self.unknown_idf = math.log(1 + n) + 1.0
        postings: Dict[str, List[Tuple[int, float]]] = {}
        for i, d in enumerate(docs):
            w = {f: (1 + math.log(c)) * self.idf[f] for f, c in d.items()}
            norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
            for f, v in w.items():
                postings.setdefault(f, []).append((i, v / norm))
        self.postings = {f: (np.array([i for i, _ in p], dtype=np.int32),
                             np.array([v for _, v in p], dtype=np.float32))
                         for f, p in postings.items()}
        self.n = n
        self._benign = self.labels == BENIGN

    def scores(self, spaced: str, tokens: Tokens) -> np.ndarray:
        """Return the cosine of the text with every exemplar."""
        d = features(spaced, tokens)
        w = {f: (1 + math.log(c)) * self.idf.get(f, self.unknown_idf) for f, c in d.items()}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        idx, val = [], []
        for f, v in w.items():
            p = self.postings.get(f)
            if p is not None:
                idx.append(p[0])
                val.append(p[1] * (v / norm))
        if not idx:
            return np.zeros(self.n, dtype=np.float32)
        return np.bincount(np.concatenate(idx), np.concatenate(val), minlength=self.n)

    def nearest(self, spaced: str, tokens: Tokens) -> Optional[Nearest]:
        """Return the nearest risky exemplar (None without risky exemplars)."""
        scores = self.scores(spaced, tokens)
        benign = self._benign
        if not len(scores) or benign.all():
            return None
        risky_scores = np.where(benign, -1.0, scores)
        best = int(np.argmax(risky_scores))
        best_benign = float(scores[benign].max()) if benign.any() else 0.0
        return Nearest(str(self.labels[best]), self.texts[best], float(risky_scores[best]),
                       best_benign)


class Exemplars:
    """The labelled exemplar sentences; indexed on first use (Kiwi analyses each one once)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str]):
        self.texts = [normalise(t) for t in texts]
        self.labels = list(labels)
        self._index: Optional[ExemplarIndex] = None
        self._lock = threading.Lock()

    @classmethod
    def gather(cls, risky: Dict[str, Sequence[str]], benign: Sequence[str]) -> 'Exemplars':
        """Return every category's exemplars (labelled with its name) and the benign ones."""
        texts = [t for name in risky for t in risky[name]] + list(benign)
        labels = [name for name in risky for _ in risky[name]] + [BENIGN] * len(benign)
        return cls(texts, labels)

    def index(self, tokenize: Callable[[str], Tokens]) -> ExemplarIndex:
        """Return the TF-IDF index, built on the first call with tokenize (Kiwi)."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = ExemplarIndex(self.texts, self.labels,
                                                [tokenize(t) for t in self.texts])
        return self._index
