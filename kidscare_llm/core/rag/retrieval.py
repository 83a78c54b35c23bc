"""The search half of the knowledge base: both retrievers' candidates, fused, floored, cited.

A mixin of KnowledgeBase (knowledge.py), which owns the manifest, the BM25 index, the vector
store, the embedder and the analyzer these methods read; ingestion is the other half.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from kidscare_llm.core.rag.documents import Passage
from kidscare_llm.core.rag.fusion import fuse, fuse_learned, relevant


@dataclass
class Scored:
    """One query's candidates: each retriever's best, and every candidate scored by both."""

    bm25: Dict[str, float]  # BM25's top candidates: score
    dense: Dict[str, float]  # the dense top candidates: cosine
    explained: Dict[str, Tuple[float, float]]  # all of them: (BM25 score, idf coverage)
    cosines: Dict[str, float]  # all of them that have a vector: cosine


class Retrieval:
    """Search over a KnowledgeBase's indexes (see fusion.py for how the scores combine)."""

    def scored(self, query: str) -> Scored:
        """Return both retrievers' best candidates, each scored by both (see fusion.py)."""
        if not len(self) or not query.strip():
            return Scored({}, {}, {}, {})
        terms = self.analyzer.terms(query)
        vector = self.embedder.query(query)
        with self._lock:
            bm25 = dict(self.bm25.search(terms, self.n_candidates))
            embedded = len(self.bm25) - self._db.execute(
                'SELECT count(*) FROM pending').fetchone()[0]
            dense = self.vectors.query(vector, min(self.n_candidates, embedded))
            union = set(bm25) | set(dense)
            explained = self.bm25.explain(terms, union)
            others = self.vectors.vectors([c for c in union if c not in dense])
        cosines = dict(dense, **{c: float(v @ vector) for c, v in others.items()})
        return Scored(bm25, dense, explained, cosines)

    def candidates(self, query: str) -> Tuple[Dict[str, float], Dict[str, float]]:
        """Return the best BM25 scores and dense cosines for a query, by chunk id."""
        got = self.scored(query)
        return got.bm25, got.dense

    def relevant(self, bm25: Dict[str, float], dense: Dict[str, float]) -> bool:
        """Apply the relevance floor: True when either retriever found something close enough."""
        return relevant(bm25, dense, self.min_dense, self.min_bm25)

    def fused(self, got: Scored) -> Dict[str, float]:
        """Return the fused score of every candidate (rag.fusion: learned or fixed)."""
        if self.fusion == 'fixed':
            return fuse(got.bm25, got.dense, self.fusion_weight)
        return fuse_learned(got.explained, got.cosines)

    def search(self, query: str, k: int = 4) -> List[Passage]:
        """Return up to k passages for the query, best first; [] when nothing is relevant."""
        got = self.scored(query)
        if not (got.bm25 or got.dense) or not self.relevant(got.bm25, got.dense):
            return []
        fused = self.fused(got)
        best = sorted(fused, key=fused.get, reverse=True)[:k]
        rows = self._chunks(best)
        return [Passage(cid, rows[cid][2], rows[cid][0], rows[cid][1], rows[cid][3],
                        fused[cid], got.explained.get(cid, (0.0, 0.0))[0],
                        got.cosines.get(cid, 0.0))
                for cid in best if cid in rows]

    def _chunks(self, ids: Sequence[str]) -> Dict[str, Tuple[str, int, str, str]]:
        if not ids:
            return {}
        marks = ','.join('?' * len(ids))
        with self._lock:
            rows = self._db.execute(f'SELECT chunk_id, source, position, text, title FROM '
                                    f'chunks WHERE chunk_id IN ({marks})', list(ids))
            return {r[0]: (r[1], r[2], r[3], r[4] or '') for r in rows}
