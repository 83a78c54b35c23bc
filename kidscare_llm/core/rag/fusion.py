"""Fusing the two retrievers' scores, and the floor below which nothing is relevant.

Pure functions over {chunk id: score} maps, apart from the indexes so the bench can replay
every fusion on the same candidates. `fuse` is the fixed weighted sum of the first rounds
(rag.fusion: fixed). `fuse_learned` (the default) adapts to the question: every candidate of
either retriever is scored by both (BM25 score, share of the question's idf it covers,
cosine), and a logistic combiner weighs them with the best coverage any candidate reaches. A
question that shares its words with some passage (KorQuAD: coverage ~0.8) leans on BM25, one
written in other words (a web search: ~0.4) on the dense cosine. Its coefficients were fitted
on the two tuning splits only (bench/retrieval.py --fit); see docs/rag.md for the figures.
"""

import math
from typing import Dict, Tuple

# Fitted by `bench/retrieval.py --fit` on KorQuAD's tuning split and dense_ko_tune (never on
# the reported questions): intercept, then the weights of the features in `_features`.
LEARNED = (-9.3691, (2.4713, 6.4015, 3.999, 0.4454, -1.4773))


def fuse(bm25: Dict[str, float], dense: Dict[str, float], weight: float) -> Dict[str, float]:
    """Weighted sum of scores normalised per query: BM25 by its best, cosine by min-max.

    weight is the BM25 share. A candidate missing from one list gets 0 from it.
    """
    b_max = max(bm25.values(), default=0.0) or 1.0
    d_lo, d_hi = min(dense.values(), default=0.0), max(dense.values(), default=1.0)
    d_span = (d_hi - d_lo) or 1.0
    return {cid: weight * bm25.get(cid, 0.0) / b_max
            + (1 - weight) * ((dense[cid] - d_lo) / d_span if cid in dense else 0.0)
            for cid in set(bm25) | set(dense)}


def features(explained: Dict[str, Tuple[float, float]], cosines: Dict[str, float]
             ) -> Dict[str, Tuple[float, ...]]:
    """Return per candidate: BM25 by the best, cosine min-max, coverage, both times best coverage.

    Coverage is the share of the question's idf a candidate's words hold; the best coverage
    over all candidates tells how literally the question can be matched. A chunk without a
    vector yet (still pending) takes the lowest cosine.
    """
    if not explained:
        return {}
    b_max = max(s for s, _ in explained.values()) or 1.0
    lo = min(cosines.values(), default=0.0)
    hi = max(cosines.values(), default=0.0)
    span = (hi - lo) or 1.0
    best_cover = max(c for _, c in explained.values())
    out = {}
    for cid, (score, cover) in explained.items():
        b, d = score / b_max, (cosines.get(cid, lo) - lo) / span
        out[cid] = (b, d, cover, b * best_cover, d * best_cover)
    return out


def fuse_learned(explained: Dict[str, Tuple[float, float]], cosines: Dict[str, float],
                 coefficients=LEARNED) -> Dict[str, float]:
    """Probability-like score per candidate from the learned combiner (higher is better)."""
    bias, weights = coefficients
    return {cid: 1 / (1 + math.exp(-(bias + sum(w * x for w, x in zip(weights, f)))))
            for cid, f in features(explained, cosines).items()}


def relevant(bm25: Dict[str, float], dense: Dict[str, float], min_dense: float,
             min_bm25: float) -> bool:
    """Return True when either retriever found something close enough to inject.

    The best cosine must reach min_dense, or the best BM25 score min_bm25 (a min_bm25 of 0
    switches the BM25 side off: any shared word would pass).
    """
    return max(dense.values(), default=0.0) >= min_dense or \
        max(bm25.values(), default=0.0) >= min_bm25 > 0
