"""BM25 over Kiwi content morphemes, persisted in the knowledge base's SQLite file.

Two implementations behind one interface (add, remove, search, len). `BM25Index`, the one the
knowledge base uses, keeps rows in SQLite and rebuilds the postings in memory when it opens,
scoring with numpy per query term. `Fts5Index` hands the space-joined morphemes to SQLite FTS5
and ranks with its bm25(): persistent, incremental, transactional, nothing rebuilt in Python.
Measured on KorQuAD dev, 1,978 chunks, same terms and dense candidates, 2 shared cores
(bench/retrieval.py --compare-bm25):

                 alone hit@1/@5   fused hit@1/@5   search p95 2k/10k/100k   open at 100k
  BM25Index      0.911 / 0.988    0.926 / 0.995    0.2 / 0.8 / 6 ms         4.4 s, +247 MB
  Fts5Index      0.908 / 0.987    0.925 / 0.995    3.5 / 13 / 131 ms        0 s, +0 MB

Ranking is the same within noise, but FTS5 scores every row holding any query morpheme
through an auxiliary function: 10-20 times slower per query, and the bench promises query
latency at 100k chunks. BM25Index stays; its open cost is 0.1 s and 5 MB at the robot's
scale (a few thousand chunks). Fts5Index is kept for that comparison, and for a base so large
that start-up and memory outweigh query time; its scores differ (FTS5's idf is
log((N - n + 0.5) / (n + 0.5)), near 0 for words in half the chunks, k1 1.2 and b 0.75
fixed), so rag.min_bm25 would need checking again (on KorQuAD both refuse no question at 6.0).
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

    def explain(self, terms: Sequence[str], chunk_ids: Iterable[str]
                ) -> Dict[str, Tuple[float, float]]:
        """Return {chunk id: (BM25 score, share of the query's idf its words cover)}.

        For any chunk, not only the top k: fusion scores the other retriever's candidates too,
        and the covered share tells how much of the question a chunk shares word for word.
        """
        n, terms = len(self._rows), self._words(terms)
        rows = {cid: self._rows[cid] for cid in chunk_ids if cid in self._rows}
        if not n or not terms or not rows:
            return {cid: (0.0, 0.0) for cid in rows}
        avg = self._total / n
        score = dict.fromkeys(rows, 0.0)
        covered = dict.fromkeys(rows, 0.0)
        total_idf = 0.0
        for term, qtf in Counter(terms).items():
            posting = self._postings.get(term, {})
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            total_idf += qtf * idf
            for cid, row in rows.items():
                tf = posting.get(row)
                if tf:
                    norm = self.k1 * (1 - self.b + self.b * self._lengths[row] / avg)
                    score[cid] += qtf * idf * tf * (self.k1 + 1) / (tf + norm)
                    covered[cid] += qtf * idf
        return {cid: (score[cid], covered[cid] / total_idf if total_idf else 0.0)
                for cid in rows}


class Fts5Index:
    """BM25 by SQLite FTS5 over space-joined morphemes: on disk, incremental, transactional.

    `bm25_terms` holds one row per chunk (a stable integer key); `bm25_fts` is an
    external-content FTS5 table over it, kept in step by triggers. FTS5's bm25() is negative
    (lower is better) and uses k1 1.2, b 0.75 and idf log((N - n + 0.5) / (n + 0.5)); scores
    are returned negated, so higher is better as with BM25Index.
    """

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self._db.executescript('''
            CREATE TABLE IF NOT EXISTS bm25_terms (id INTEGER PRIMARY KEY,
                chunk_id TEXT UNIQUE NOT NULL, terms TEXT NOT NULL);
            CREATE VIRTUAL TABLE IF NOT EXISTS bm25_fts USING fts5(terms,
                content='bm25_terms', content_rowid='id',
                tokenize='unicode61 remove_diacritics 0');
            CREATE TRIGGER IF NOT EXISTS bm25_terms_ai AFTER INSERT ON bm25_terms BEGIN
                INSERT INTO bm25_fts (rowid, terms) VALUES (new.id, new.terms);
            END;
            CREATE TRIGGER IF NOT EXISTS bm25_terms_ad AFTER DELETE ON bm25_terms BEGIN
                INSERT INTO bm25_fts (bm25_fts, rowid, terms)
                VALUES ('delete', old.id, old.terms);
            END;
        ''')

    def __len__(self) -> int:
        return self._db.execute('SELECT count(*) FROM bm25_terms').fetchone()[0]

    def add(self, items: Sequence[Tuple[str, List[str]]]) -> None:
        """Index (chunk_id, terms) pairs (the caller commits)."""
        self.remove([cid for cid, _ in items])
        self._db.executemany('INSERT INTO bm25_terms (chunk_id, terms) VALUES (?, ?)',
                             [(cid, ' '.join(t)) for cid, t in items])

    def remove(self, chunk_ids: Iterable[str]) -> None:
        """Forget chunks (the caller commits)."""
        self._db.executemany('DELETE FROM bm25_terms WHERE chunk_id = ?',
                             [(cid,) for cid in chunk_ids])

    @staticmethod
    def _match(terms: Sequence[str]) -> str:
        # Each morpheme a quoted phrase (FTS5 syntax never leaks in); repeats kept, so a word
        # asked twice weighs twice, as in BM25Index.
        quoted = ['"' + t.replace('"', '""') + '"' for t in terms if any(c.isalnum() for c in t)]
        return ' OR '.join(quoted)

    def search(self, terms: Sequence[str], k: int) -> List[Tuple[str, float]]:
        """Return the k best (chunk_id, score) for the query terms."""
        match = self._match(terms)
        if not match:
            return []
        rows = self._db.execute(
            'SELECT t.chunk_id, -f.rank FROM (SELECT rowid, rank FROM bm25_fts '
            'WHERE bm25_fts MATCH ? ORDER BY rank LIMIT ?) AS f '
            'JOIN bm25_terms AS t ON t.id = f.rowid ORDER BY f.rank', (match, k))
        return [(cid, float(score)) for cid, score in rows if score > 0]
