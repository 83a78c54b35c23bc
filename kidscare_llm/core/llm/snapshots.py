"""KV-cache snapshots per session under a RAM budget, spilled to disk when asked."""

from collections import OrderedDict
import ctypes
from dataclasses import dataclass
import hashlib
import logging
from pathlib import Path
from typing import Any, List, Optional

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class KVSnapshot:
    """One session's evaluated tokens and their KV cache (no logits: they are recomputed)."""

    tokens: List[int]
    state: Any  # ctypes buffer from llama_state_seq_get_data

    @property
    def nbytes(self) -> int:
        """Size of the KV data in bytes."""
        return len(self.state)


class SnapshotCache:
    """Per-session KV snapshots in RAM under a byte budget, least recently used evicted first.

    With a folder, evicted snapshots go to disk instead of away, and come back on use (they
    also outlive a restart: a returning child's history need not be re-read).
    """

    def __init__(self, budget_bytes: int, folder: Optional[Path] = None):
        self.budget_bytes = budget_bytes
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._items: 'OrderedDict[str, KVSnapshot]' = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items or bool(self.folder and self._path(key).exists())

    @property
    def nbytes(self) -> int:
        """Bytes held in RAM by all snapshots."""
        return sum(s.nbytes for s in self._items.values())

    def _path(self, key: str) -> Path:
        return self.folder / f'{hashlib.sha1(key.encode()).hexdigest()[:20]}.kv'

    def _spill(self, key: str, snapshot: KVSnapshot) -> None:
        if self.folder is None:
            log.info('KV snapshot of %s evicted (budget %d MB)', key, self.budget_bytes // 2**20)
            return
        self.write(key, snapshot)

    def write(self, key: str, snapshot: KVSnapshot) -> None:
        """Write a snapshot to the folder (atomically)."""
        tokens = np.asarray(snapshot.tokens, dtype=np.int32)
        tmp = self._path(key).with_suffix('.tmp')
        with tmp.open('wb') as f:
            f.write(len(tokens).to_bytes(8, 'little') + tokens.tobytes())
            f.write(bytes(snapshot.state))
        tmp.replace(self._path(key))

    def read(self, key: str) -> Optional[KVSnapshot]:
        """Read a snapshot from the folder, or None."""
        try:
            data = self._path(key).read_bytes()
        except (OSError, TypeError):
            return None
        n = int.from_bytes(data[:8], 'little')
        tokens = np.frombuffer(data[8:8 + 4 * n], dtype=np.int32).tolist()
        state = data[8 + 4 * n:]
        return KVSnapshot(tokens, (ctypes.c_uint8 * len(state)).from_buffer_copy(state))

    def _load(self, key: str) -> Optional[KVSnapshot]:
        snapshot = self.read(key)
        if snapshot is not None:
            self._path(key).unlink()  # RAM holds it now
        return snapshot

    def put(self, key: str, snapshot: KVSnapshot) -> None:
        """Keep a snapshot, evicting (or spilling) the least recently used over the budget."""
        self._items.pop(key, None)
        if snapshot.nbytes > self.budget_bytes:
            self._spill(key, snapshot)
            return
        self._items[key] = snapshot
        while self.nbytes > self.budget_bytes:
            self._spill(*self._items.popitem(last=False))

    def get(self, key: str) -> Optional[KVSnapshot]:
        """Return a snapshot (marking it recently used), from disk if spilled, or None."""
        snapshot = self._items.get(key)
        if snapshot is not None:
            self._items.move_to_end(key)
        elif self.folder is not None:
            snapshot = self._load(key)
            if snapshot is not None:
                self.put(key, snapshot)
        return snapshot

    def drop(self, key: str) -> None:
        """Forget a session's snapshot (its history was trimmed, or it was reset)."""
        self._items.pop(key, None)
        if self.folder is not None:
            self._path(key).unlink(missing_ok=True)
