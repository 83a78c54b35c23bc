"""BM25 over Kiwi content morphemes, persisted in the knowledge base's SQLite file.

The rows (chunk id, space-joined morphemes) live in SQLite; the postings are rebuilt in
memory when the index opens and scored with numpy per query term.
"""

from collections import Counter
import math
import sqlite3
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np


class BM25Index:
    """Okapi BM25 over content morphemes: rows in SQLite, postings in memory (built once)."""

    def __init__(self, db: sqlite3.Connection, k1: float = 1.2, b: float = 0.75):
        self._db, self.k1, self.b = db, k1, b
        self._db.execute('CREATE TABLE IF NOT EXISTS bm25 (chunk_id TEXT PRIMARY KEY, '
                         'terms TEXT NOT NULL)')
        self._rows: Dict[str, int] = {}
        self._ids: List[Optional[str]] = []
        self._lengths: List[int] = []
        self._postings: Dict[str, Dict[int, int]] = {}
        self._arrays: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        self._total = 0
        for chunk_id, terms in self._db.execute('SELECT chunk_id, terms FROM bm25'):
            self._add_memory(chunk_id, terms.split(' ') if terms else [])

    def __len__(self) -> int:
        return len(self._rows)

    def _add_memory(self, chunk_id: str, terms: List[str]) -> None:
        row = len(self._ids)
        self._rows[chunk_id] = row
        self._ids.append(chunk_id)
        self._lengths.append(len(terms))
        self._total += len(terms)
        for term, tf in Counter(terms).items():
            self._postings.setdefault(term, {})[row] = tf
            self._arrays.pop(term, None)

    @staticmethod
    def _words(terms: Iterable[str]) -> List[str]:
        # Kiwi may return one morpheme of several words (a name: '알렉산더 헤이그'). Rows are
        # stored space-joined, so such a term came back split after a restart and no longer
        # matched the query's: index and query its words instead, fresh or reopened alike.
        return [word for term in terms for word in term.split()]

    def add(self, items: Sequence[Tuple[str, Sequence[str]]]) -> None:
        """Index (chunk_id, terms) pairs (the caller commits)."""
        items = [(cid, self._words(terms)) for cid, terms in items]
        self.remove([cid for cid, _ in items if cid in self._rows])
        self._db.executemany('INSERT INTO bm25 (chunk_id, terms) VALUES (?, ?)',
                             [(cid, ' '.join(t)) for cid, t in items])
        for chunk_id, terms in items:
            self._add_memory(chunk_id, terms)

    def remove(self, chunk_ids: Iterable[str]) -> None:
        """Forget chunks (the caller commits)."""
        for chunk_id in chunk_ids:
            row = self._rows.pop(chunk_id, None)
            if row is None:
                continue
            stored = self._db.execute('SELECT terms FROM bm25 WHERE chunk_id = ?',
                                      (chunk_id,)).fetchone()
            self._db.execute('DELETE FROM bm25 WHERE chunk_id = ?', (chunk_id,))
            self._total -= self._lengths[row]
            self._ids[row] = None
            self._lengths[row] = 0
            for term in set(stored[0].split(' ')) if stored and stored[0] else ():
                posting = self._postings.get(term, {})
                posting.pop(row, None)
                self._arrays.pop(term, None)
                if not posting:
                    self._postings.pop(term, None)

    def _posting(self, term: str) -> Tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get(term)
        if arrays is None:
            posting = self._postings.get(term, {})
            arrays = (np.fromiter(posting.keys(), np.int64, len(posting)),
                      np.fromiter(posting.values(), np.float32, len(posting)))
            self._arrays[term] = arrays
        return arrays

    def search(self, terms: Sequence[str], k: int) -> List[Tuple[str, float]]:
        """Return the k best (chunk_id, score) for the query terms."""
        n, terms = len(self._rows), self._words(terms)
        if not n or not terms:
            return []
        lengths = np.asarray(self._lengths, dtype=np.float32)
        norm = self.k1 * (1 - self.b + self.b * lengths / (self._total / n))
        scores = np.zeros(len(self._ids), dtype=np.float32)
        for term, qtf in Counter(terms).items():
            rows, tf = self._posting(term)
            if not len(rows):
                continue
            idf = math.log(1 + (n - len(rows) + 0.5) / (len(rows) + 0.5))
            scores[rows] += qtf * idf * tf * (self.k1 + 1) / (tf + norm[rows])
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        return [(self._ids[i], float(scores[i])) for i in top[np.argsort(-scores[top])]
                if scores[i] > 0]
