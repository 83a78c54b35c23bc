"""One child's memory on disk: a SQLite file per child, with its BM25 rows and embeddings.

A file per child is the wall between children: a search opens only that child's file, so one
child's words cannot come back for another, and clearing a child deletes the file. Deleted
rows are overwritten (PRAGMA secure_delete), so a forgotten item is gone from disk, not hidden.
A child's memory is small (hundreds of items), so dense search is an exact cosine over all of
them in numpy rather than an approximate index; BM25 is the knowledge base's own class.
"""

import hashlib
import os
from pathlib import Path
import re
import sqlite3
import threading
from typing import Dict, Iterable, List, Optional

import numpy as np

from kidscare_llm.core.memory.items import ACTIVE, MemoryItem, SUPERSEDED
from kidscare_llm.core.rag.bm25 import BM25Index

SCHEMA = '''
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    created_at REAL NOT NULL, said_on TEXT NOT NULL, session TEXT NOT NULL DEFAULT '',
    message_id INTEGER, event_date TEXT, status TEXT NOT NULL DEFAULT 'active',
    superseded_by TEXT, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS items_status ON items (status, created_at);
'''
COLUMNS = ('id', 'user', 'kind', 'text', 'created_at', 'said_on', 'session', 'message_id',
           'event_date', 'status', 'superseded_by')


def user_file(folder: Path, user: str) -> Path:
    """Return the child's file: readable name plus a hash, so no two ids share a file."""
    safe = re.sub(r'[^\w가-힣-]+', '_', user)[:40].strip('_') or 'user'
    digest = hashlib.sha256(user.encode('utf-8')).hexdigest()[:10]
    return folder / f'{safe}-{digest}.sqlite3'


class ChildStore:
    """The items of one child: add, supersede, edit, delete, and search (BM25 + cosine)."""

    def __init__(self, path: Path, user: str):
        self.path, self.user = path, user
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute('PRAGMA secure_delete = ON')
        self._db.executescript(SCHEMA)
        self._db.execute('CREATE TABLE IF NOT EXISTS owner (user TEXT NOT NULL)')
        if not self._db.execute('SELECT 1 FROM owner').fetchone():
            self._db.execute('INSERT INTO owner (user) VALUES (?)', (user,))
        self._db.commit()
        self.lock = threading.RLock()
        self._inode = os.stat(path).st_ino
        self._load()

    def _load(self) -> None:
        """Read the active items' embeddings and BM25 rows into memory."""
        self.bm25 = BM25Index(self._db)
        self._vectors: Dict[str, np.ndarray] = {
            row[0]: np.frombuffer(row[1], dtype=np.float32)
            for row in self._db.execute('SELECT id, vector FROM items WHERE status = ?',
                                        (ACTIVE,))}
        self._matrix: Optional[np.ndarray] = None
        self._ids: List[str] = []
        self._version = self._db.execute('PRAGMA data_version').fetchone()[0]

    def gone(self) -> bool:
        """Return True when the file was deleted or replaced by another process (CLI clear)."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            return True

    def refresh(self) -> None:
        """Reload when another process changed the file (a parent's CLI forget or edit)."""
        with self.lock:
            if self._db.execute('PRAGMA data_version').fetchone()[0] != self._version:
                self._load()

    def __len__(self) -> int:
        return len(self._vectors)

    def add(self, item: MemoryItem, terms: List[str], vector: np.ndarray) -> None:
        """Store an active item with its BM25 terms and embedding (committed)."""
        with self.lock:
            row = [getattr(item, c) for c in COLUMNS]
            self._db.execute(f'INSERT INTO items ({", ".join(COLUMNS)}, vector) VALUES '
                             f'({", ".join("?" * (len(COLUMNS) + 1))})',
                             row + [np.asarray(vector, np.float32).tobytes()])
            self.bm25.add([(item.id, terms)])
            self._db.commit()
            self._vectors[item.id] = np.asarray(vector, np.float32)
            self._matrix = None

    def supersede(self, old_ids: Iterable[str], new_id: str) -> None:
        """Keep the old items as history, out of every search (committed)."""
        with self.lock:
            old_ids = [i for i in old_ids if i in self._vectors]
            self._db.executemany('UPDATE items SET status = ?, superseded_by = ? WHERE id = ?',
                                 [(SUPERSEDED, new_id, i) for i in old_ids])
            self.bm25.remove(old_ids)
            self._db.commit()
            for i in old_ids:
                self._vectors.pop(i, None)
            self._matrix = None

    def edit(self, item_id: str, text: str, terms: List[str], vector: np.ndarray) -> bool:
        """Replace an item's words (a parent's edit); False when there is no such item."""
        with self.lock:
            cursor = self._db.execute('UPDATE items SET text = ?, vector = ? WHERE id = ?',
                                      (text, np.asarray(vector, np.float32).tobytes(), item_id))
            if not cursor.rowcount:
                return False
            if item_id in self._vectors:
                self.bm25.add([(item_id, terms)])
                self._vectors[item_id] = np.asarray(vector, np.float32)
                self._matrix = None
            self._db.commit()
            return True

    def delete(self, item_ids: Iterable[str]) -> int:
        """Delete items and their history rows from disk; return how many rows went."""
        with self.lock:
            item_ids = list(item_ids)
            gone = 0
            for item_id in item_ids:
                gone += self._db.execute('DELETE FROM items WHERE id = ?', (item_id,)).rowcount
                self._vectors.pop(item_id, None)
            self.bm25.remove(item_ids)
            self._db.commit()
            self._matrix = None
            return gone

    def items(self, history: bool = False) -> List[MemoryItem]:
        """Return the child's items, oldest first (history: superseded ones too)."""
        query = f'SELECT {", ".join(COLUMNS)} FROM items'
        if not history:
            query += f" WHERE status = '{ACTIVE}'"
        with self.lock:
            rows = self._db.execute(query + ' ORDER BY created_at, rowid').fetchall()
        return [MemoryItem(**dict(zip(COLUMNS, row))) for row in rows]

    def get(self, item_ids: Iterable[str]) -> Dict[str, MemoryItem]:
        """Return the items with these ids."""
        item_ids = list(item_ids)
        if not item_ids:
            return {}
        with self.lock:
            rows = self._db.execute(
                f'SELECT {", ".join(COLUMNS)} FROM items WHERE id IN '
                f'({", ".join("?" * len(item_ids))})', item_ids).fetchall()
        return {row[0]: MemoryItem(**dict(zip(COLUMNS, row))) for row in rows}

    def dense(self, query: np.ndarray) -> Dict[str, float]:
        """Return the cosine of every active item to the query (rows are L2-normalised)."""
        with self.lock:
            if not self._vectors:
                return {}
            if self._matrix is None:
                self._ids = list(self._vectors)
                self._matrix = np.stack([self._vectors[i] for i in self._ids])
            scores = self._matrix @ np.asarray(query, np.float32)
            return dict(zip(self._ids, scores.tolist()))

    def terms(self, item_ids: Iterable[str]) -> Dict[str, List[str]]:
        """Return the content morphemes BM25 indexed for each active item."""
        item_ids = list(item_ids)
        with self.lock:
            rows = self._db.execute(
                f'SELECT chunk_id, terms FROM bm25 WHERE chunk_id IN '
                f'({", ".join("?" * len(item_ids))})', item_ids).fetchall()
        return {cid: terms.split(' ') if terms else [] for cid, terms in rows}

    def vector(self, item_id: str) -> Optional[np.ndarray]:
        """Return an active item's embedding."""
        return self._vectors.get(item_id)

    def close(self) -> None:
        """Close the file."""
        with self.lock:
            self._db.close()
