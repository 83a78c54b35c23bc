"""Dense vectors in the background: chunks are searchable by BM25 at once, by meaning soon after.

Ingestion stores a chunk's text and BM25 terms and queues its id in the `pending` table of the
knowledge base's SQLite file, in the same transaction. One worker thread takes pending chunks
in batches, embeds them (a vector is computed once per distinct text and embedder: the
`vector_cache` table, keyed by a hash of both), stores the vectors in Chroma and only then
drops the batch from `pending`. A process killed mid-way leaves its unfinished chunks queued,
and the next start resumes with them; a batch whose vectors were stored but not yet dequeued
is embedded again from the cache, at no cost.
"""

import hashlib
import logging
import sqlite3
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

SCHEMA = ('CREATE TABLE IF NOT EXISTS pending (chunk_id TEXT PRIMARY KEY)',
          'CREATE TABLE IF NOT EXISTS vector_cache (key TEXT PRIMARY KEY, '
          'vector BLOB NOT NULL)')


class VectorCache:
    """Vectors by hash of (embedder, text) in SQLite: a text is embedded once, ever."""

    def __init__(self, db: sqlite3.Connection, embedder_name: str):
        self._db, self._name = db, embedder_name

    def key(self, text: str) -> str:
        """Return the cache key of a text for this embedder."""
        return hashlib.sha256(f'{self._name}\n{text}'.encode('utf-8')).hexdigest()

    def get(self, texts: Sequence[str]) -> Dict[str, np.ndarray]:
        """Return {text: vector} for the texts already embedded (the caller holds the lock)."""
        keys = {self.key(t): t for t in texts}
        found = {}
        items = list(keys)
        for start in range(0, len(items), 500):
            part = items[start:start + 500]
            rows = self._db.execute('SELECT key, vector FROM vector_cache WHERE key IN '
                                    f'({",".join("?" * len(part))})', part)
            found.update({keys[k]: np.frombuffer(v, dtype=np.float32) for k, v in rows})
        return found

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Remember vectors of texts (the caller holds the lock and commits)."""
        self._db.executemany('INSERT OR REPLACE INTO vector_cache (key, vector) VALUES (?, ?)',
                             [(self.key(t), np.asarray(v, dtype=np.float32).tobytes())
                              for t, v in zip(texts, vectors)])

    def prune(self) -> int:
        """Forget vectors no stored chunk has (the caller holds the lock and commits)."""
        used = {self.key(t) for (t,) in self._db.execute('SELECT text FROM chunks')}
        stale = [(k,) for (k,) in self._db.execute('SELECT key FROM vector_cache')
                 if k not in used]
        self._db.executemany('DELETE FROM vector_cache WHERE key = ?', stale)
        return len(stale)


class EmbeddingWorker:
    """One thread that embeds pending chunks in batches and stores their vectors."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, embedder, vectors,
                 batch: int = 32):
        for statement in SCHEMA:
            db.execute(statement)
        db.commit()
        self._db, self._lock, self.embedder, self._vectors = db, lock, embedder, vectors
        self.cache = VectorCache(db, embedder.name)
        self.batch = batch
        self._wake, self._idle = threading.Event(), threading.Event()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self.embedded = 0  # vectors this process computed (cache hits excluded)
        self.failures = 0  # batches failed in a row (Chroma unwritable, say); 0 after a success

    def pending(self) -> int:
        """Return how many stored chunks wait for their vectors."""
        with self._lock:
            return self._db.execute('SELECT count(*) FROM pending').fetchone()[0]

    def kick(self) -> None:
        """Wake the worker (starting its thread the first time) when chunks are queued."""
        self._idle.clear()
        self._wake.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name='kb-embedder', daemon=True)
            self._thread.start()

    def wait(self, timeout: Optional[float] = None,
             progress: Optional[Callable[[int], None]] = None) -> bool:
        """Block until nothing is pending (True), or timeout seconds pass or batches keep failing.

        Three more failed batches in a row return False (the error is logged; the chunks stay
        queued and the worker keeps retrying), so a caller never waits forever.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        failed = self.failures
        while self.pending():
            if self.failures >= failed + 3:
                return False
            if self._thread is None:
                self.kick()
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                return False
            self._idle.wait(left)
            if progress:
                progress(self.pending())
        return True

    def stop(self) -> None:
        """Stop after the batch in hand; what is still pending stays queued for next time."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _take(self) -> List[tuple]:
        with self._lock:
            return self._db.execute(
                'SELECT c.chunk_id, c.text, c.source, c.position, c.title FROM pending p '
                'JOIN chunks c ON c.chunk_id = p.chunk_id LIMIT ?', (self.batch,)).fetchall()

    def vectors_of(self, texts: Sequence[str]) -> np.ndarray:
        """Return the texts' vectors: from the cache, else embedded now (each distinct once)."""
        with self._lock:
            known = self.cache.get(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = self.embedder.passages(missing)
            self.embedded += len(missing)
            with self._lock:
                self.cache.put(missing, fresh)
                self._db.commit()
            known.update(zip(missing, fresh))
        return np.stack([known[t] for t in texts]) if texts else np.zeros((0, 1))

    def _store(self, rows: List[tuple], vectors: np.ndarray) -> None:
        with self._lock:
            ids = [r[0] for r in rows]
            alive = {cid for (cid,) in self._db.execute(
                f'SELECT chunk_id FROM chunks WHERE chunk_id IN ({",".join("?" * len(ids))})',
                ids)}  # a document removed meanwhile must not come back in Chroma
            keep = [i for i, r in enumerate(rows) if r[0] in alive]
            self._vectors.upsert([rows[i][0] for i in keep], vectors[keep],
                                 [rows[i][1] for i in keep],
                                 [{'source': rows[i][2], 'position': rows[i][3],
                                   'title': rows[i][4] or ''} for i in keep])
            self._db.executemany('DELETE FROM pending WHERE chunk_id = ?', [(c,) for c in ids])
            self._db.commit()

    def _run(self) -> None:
        while not self._stopping:
            try:
                rows = self._take()
                if not rows:
                    self._idle.set()
                    self._wake.wait()
                    self._wake.clear()
                    continue
                self._store(rows, self.vectors_of([r[1] for r in rows]))
                self.failures = 0
            except (sqlite3.ProgrammingError, AttributeError):
                return  # the knowledge base was closed under us
            except Exception:  # noqa: B902 - keep serving BM25; retry the batch later
                self.failures += 1
                log.exception('embedding a batch of knowledge chunks failed; retrying in 5 s')
                self._wake.wait(5.0)
                self._wake.clear()
        self._idle.set()
