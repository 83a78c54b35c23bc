"""The safety check's learned stage: a linear model over character n-grams and morphemes.

The lexicon catches the wording operators wrote down; a new author's sentences slip past it
(README: Child safety, unseen sets). This stage learns from labelled example sentences
(data/safety/train/*.jsonl, {"text": ..., "label": "benign" | <category>}): hashed
character 1-4-grams of each word and Kiwi morphemes, one multinomial logistic regression
(scikit-learn, class-balanced). With an embedder (policy.yaml classifier.embedding > 0) the
text's e5 sentence embedding, which retrieval computes for the same words anyway, joins the
features: a new author's wording lands near the training lines' meaning even when no n-gram
matches. Training takes seconds and runs once: the weights are cached under the cache dir,
keyed by a hash of the examples and the settings. Prediction is a sparse dot product in numpy
(well under a millisecond) plus a 384-wide one for the embedding.
"""

import hashlib
import json
import logging
import os
from pathlib import Path
import tempfile
from typing import Callable, List, Optional, Sequence, Tuple
import zlib

import numpy as np

from kidscare_llm.core.errors import ConfigError

log = logging.getLogger(__name__)

FEATURES_VERSION = 1  # bump when features() changes: cached weights are then retrained
NGRAMS = (1, 2, 3, 4)


def features(spaced: str, morphs: str, dims_log2: int) -> Tuple[np.ndarray, np.ndarray]:
    """Return (indices, values) of the hashed, log-scaled, L2-normalised feature vector.

    spaced is the normalised, standardised text; morphs the Kiwi morpheme string
    (" form/TAG form/TAG"), both as the lexicon sees them.
    """
    mask = (1 << dims_log2) - 1
    counts = {}
    keys = []
    for word in spaced.split():
        word = f' {word} '
        keys += [word[i:i + n] for n in NGRAMS for i in range(len(word) - n + 1)]
    keys += ['m:' + m for m in morphs.split()]
    for key in keys:
        h = zlib.crc32(key.encode('utf-8')) & mask
        counts[h] = counts.get(h, 0) + 1
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    idx = np.fromiter(counts.keys(), np.int64, len(counts))
    val = 1.0 + np.log(np.fromiter(counts.values(), np.float64, len(counts)))
    val /= np.linalg.norm(val)
    return idx, val.astype(np.float32)


def read_labelled(path: Path) -> List[Tuple[str, str]]:
    """Return [(text, label)] of one JSONL file; a bad line raises ConfigError with its number."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            rows.append((str(obj['text']), str(obj['label'])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f'{path}:{n}: not a {{"text": ..., "label": ...}} line ({exc}); '
                              'fix or remove it') from None
    return rows


def read_examples(folder: Path) -> List[Tuple[str, str]]:
    """Return [(text, label)] of every *.jsonl file in folder, in name order.

    conversations_*.jsonl (multi-turn examples of the conversation stage) are not lines.
    """
    return [row for path in sorted(folder.glob('*.jsonl'))
            if not path.name.startswith('conversations') for row in read_labelled(path)]


class SafetyClassifier:
    """Multinomial logistic regression on hashed features; predicts P(label | text)."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, classes: Sequence[str],
                 dims_log2: int, dense: Optional[np.ndarray] = None):
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)  # (classes, dims)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.classes = [str(c) for c in classes]
        self.dims_log2 = int(dims_log2)
        self.benign = self.classes.index('benign')  # load_or_train requires benign lines
        # (classes, embedding width), the embedding's weight folded in; None: n-grams only
        self.dense = None if dense is None else np.asarray(dense, dtype=np.float32)

    def proba(self, spaced: str, morphs: str, vector: Optional[np.ndarray] = None) -> np.ndarray:
        """Return the class probabilities of one analysed text (softmax of the scores).

        vector: the text's sentence embedding, required when the model was trained with one.
        """
        idx, val = features(spaced, morphs, self.dims_log2)
        z = self.weights[:, idx] @ val + self.bias
        if self.dense is not None:
            if vector is None:
                raise ValueError('this safety classifier needs the sentence embedding')
            z = z + self.dense @ np.asarray(vector, dtype=np.float32)
        z = np.exp(z - z.max())
        return z / z.sum()

    def risky(self, spaced: str, morphs: str,
              vector: Optional[np.ndarray] = None) -> Tuple[str, float, float]:
        """Return (most likely risky label, P(not benign), P(that label)) of one text."""
        p = self.proba(spaced, morphs, vector)
        risk = 1.0 - float(p[self.benign])
        p[self.benign] = -1.0
        best = int(np.argmax(p))
        return self.classes[best], risk, float(p[best])

    # -- training and the cache

    @classmethod
    def train(cls, rows: Sequence[Tuple[str, str]], analyse: Callable[[str], Tuple[str, str]],
              dims_log2: int, c: float, vectors: Optional[np.ndarray] = None,
              weight: float = 1.0) -> 'SafetyClassifier':
        """Fit on [(text, label)]; analyse(text) returns (spaced, morphs) as the checker sees.

        vectors: the rows' sentence embeddings (one row each), scaled by weight as features.
        """
        from scipy.sparse import csr_matrix, hstack
        from sklearn.linear_model import LogisticRegression

        ind, vals, ptr = [], [], [0]
        for text, _ in rows:
            spaced, morphs = analyse(text)
            i, v = features(spaced, morphs, dims_log2)
            ind.append(i)
            vals.append(v)
            ptr.append(ptr[-1] + len(i))
        x = csr_matrix((np.concatenate(vals), np.concatenate(ind), np.array(ptr)),
                       shape=(len(rows), 1 << dims_log2))
        if vectors is not None:
            x = hstack([x, csr_matrix(np.asarray(vectors, dtype=np.float32) * weight)]).tocsr()
        model = LogisticRegression(C=c, max_iter=3000, class_weight='balanced')
        model.fit(x, [label for _, label in rows])
        # stored as float16 (save); round here too, so a cached model predicts the same
        weights = model.coef_.astype(np.float16).astype(np.float32)
        sparse = weights[:, :1 << dims_log2]
        dense = None if vectors is None else weights[:, 1 << dims_log2:] * weight
        return cls(sparse, model.intercept_, model.classes_, dims_log2, dense)

    def save(self, path: Path) -> None:
        """Write the weights to path atomically (two processes may train at once)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix='.npz')
        try:
            with os.fdopen(fd, 'wb') as f:
                extra = {} if self.dense is None else {'dense': self.dense}
                np.savez_compressed(f, weights=self.weights.astype(np.float16), bias=self.bias,
                                    classes=np.array(self.classes),
                                    dims_log2=np.array(self.dims_log2), **extra)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def read(cls, path: Path) -> 'SafetyClassifier':
        """Read weights written by save()."""
        with np.load(path, allow_pickle=False) as z:
            return cls(z['weights'].astype(np.float32), z['bias'], list(z['classes']),
                       int(z['dims_log2']), z['dense'] if 'dense' in z.files else None)

    @classmethod
    def load_or_train(cls, folder: Path, analyse: Callable[[str], Tuple[str, str]],
                      dims_log2: int, c: float, cache: Optional[Path],
                      salt: str = '', embedder=None, weight: float = 0.0) -> 'SafetyClassifier':
        """Return the cached model of these examples and settings, training it if needed.

        salt: anything else the features depend on (the checker's rewrite rules). embedder
        (create_embedder's, with queries()) and weight > 0: the lines' sentence embeddings
        join the features (embedded once, at training; the embedder's name is in the key).
        """
        embedder = embedder if weight > 0 else None
        rows = read_examples(folder)
        labels = {label for _, label in rows}
        if 'benign' not in labels or len(labels) < 2:
            raise ConfigError(f'{folder}: the classifier needs benign and risky example lines '
                              '(*.jsonl); add them or set classifier.enabled: false')
        digest = hashlib.sha256(json.dumps(
            [FEATURES_VERSION, dims_log2, c, salt, rows] +
            ([embedder.name, weight] if embedder is not None else []),
            ensure_ascii=False).encode('utf-8'))
        path = cache / f'safety-classifier-{digest.hexdigest()[:16]}.npz' if cache else None
        if path is not None and path.is_file():
            try:
                return cls.read(path)
            except (OSError, ValueError, KeyError) as exc:
                log.warning('safety classifier cache %s unreadable (%s): training again', path,
                            exc)
        log.info('training the safety classifier on %d example lines%s (once; cached)',
                 len(rows), ' and their embeddings' if embedder is not None else '')
        vectors = None if embedder is None else embedder.queries([t for t, _ in rows])
        model = cls.train(rows, analyse, dims_log2, c, vectors, weight)
        if path is not None:
            try:
                model.save(path)
            except OSError as exc:
                log.warning('cannot cache the safety classifier in %s (%s): it is trained '
                            'again at the next start', path.parent, exc.strerror)
        return model
