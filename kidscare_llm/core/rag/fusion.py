"""Fusing the two retrievers' scores, and the floor below which nothing is relevant.

Pure functions over {chunk id: score} maps, apart from the indexes so the bench can replay
every fusion weight on the same candidates. On KorQuAD a weighted sum of normalised scores
beat reciprocal-rank fusion (and either retriever alone); see bench/retrieval.py.
"""

from typing import Dict


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


def relevant(bm25: Dict[str, float], dense: Dict[str, float], min_dense: float,
             min_bm25: float) -> bool:
    """Return True when either retriever found something close enough to inject.

    The best cosine must reach min_dense, or the best BM25 score min_bm25 (a min_bm25 of 0
    switches the BM25 side off: any shared word would pass).
    """
    return max(dense.values(), default=0.0) >= min_dense or \
        max(bm25.values(), default=0.0) >= min_bm25 > 0
