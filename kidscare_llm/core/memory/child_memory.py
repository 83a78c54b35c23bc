"""ChildMemory: remember what each child says worth keeping, recall it, let a parent delete it.

The engine calls remember() after each turn and recall() before each reply; the CLI, the
caregiver console and the bench call the same methods. Extraction is rules (config/memory),
optionally with a model stage (memory.extract: llm | both); storage is one file per child
(store.py); recall is the knowledge base's hybrid retrieval (BM25 over Kiwi morphemes fused with
e5 cosines) plus a nudge for the kind of thing asked about and for newer statements.
"""

import datetime as dt
import logging
from pathlib import Path
import threading
from typing import Dict, List, Optional
import uuid

from kidscare_llm.core.errors import InputError
from kidscare_llm.core.memory.items import MemoryItem
from kidscare_llm.core.memory.rules import Candidate, RuleExtractor
from kidscare_llm.core.memory.store import ChildStore, user_file
from kidscare_llm.core.memory.updates import Updates

log = logging.getLogger(__name__)
DENSE_RANGE = (0.80, 0.95)  # cosines mapped onto 0..1 for fusion


class MemoryNotFound(InputError):
    """No memory item with that id for that child."""


class ChildMemory:
    """Per-child memory items: extraction, storage, hybrid recall, parent control.

    What replaces what (corrections, changes, newer statements first) is updates.py's.
    """

    # Recall: the BM25 share of the fused score, and the nudges for an item of the kind asked
    # about and for the newest statement (tuned on data/memory/dev.jsonl, docs/memory.md).
    fusion_weight, kind_boost, recency_boost = 0.3, 0.25, 0.1

    def __init__(self, folder: Path, embedder, analyzer, safety=None, extract: str = 'rules',
                 backend=None, top_k: int = 3, min_dense: float = 0.80,
                 rules: Optional[Path] = None):
        self.folder = Path(folder)
        self.embedder, self.analyzer, self.safety = embedder, analyzer, safety
        self.rules = RuleExtractor(analyzer, rules)
        self.updates = Updates(analyzer, embedder, self.rules)
        self.llm = None
        if extract in ('llm', 'both') and backend is not None:
            from kidscare_llm.core.memory.llm_extract import LLMExtractor
            self.llm = LLMExtractor(backend)
        self.extract_mode = extract
        self.top_k, self.min_dense = top_k, min_dense
        self._stores: Dict[str, ChildStore] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ stores

    def _store(self, user: str, create: bool) -> Optional[ChildStore]:
        with self._lock:
            store = self._stores.get(user)
            if store is not None and store.gone():  # cleared by another process
                store.close()
                del self._stores[user]
                store = None
            if store is None:
                path = user_file(self.folder, user)
                if not create and not path.exists():
                    return None
                store = self._stores[user] = ChildStore(path, user)
            else:
                store.refresh()
            return store

    def users(self) -> List[str]:
        """Return every child with a memory file."""
        import sqlite3

        found = set(self._stores)
        for path in sorted(self.folder.glob('*.sqlite3')):
            try:
                with sqlite3.connect(str(path)) as db:
                    row = db.execute('SELECT user FROM owner').fetchone()
            except sqlite3.Error:
                continue
            if row:
                found.add(row[0])
        return sorted(found)

    # ------------------------------------------------------------------ writing

    def remember(self, user: str, text: str, session: str = '',
                 message_id: Optional[int] = None, said: Optional[dt.datetime] = None,
                 verdict=None) -> List[MemoryItem]:
        """Keep what is worth keeping of one child utterance; return the items stored.

        Nothing is stored from an utterance the safety check flags (verdict, or checked here)
        or one holding personal information (address, phone, passwords).
        """
        said = said or dt.datetime.now().astimezone()
        if self._refused(user, text, verdict):
            return []
        candidates = self._extract(text, said)
        if not candidates:
            return []
        terms = self.analyzer.terms_many([c.text for c in candidates])
        vectors = self.embedder.passages([c.text for c in candidates])
        store = self._store(user, create=True)
        stored = []
        with store.lock:
            for n, (cand, words, vector) in enumerate(zip(candidates, terms, vectors)):
                # a millisecond apart: the statements of one utterance keep their order
                item = MemoryItem(uuid.uuid4().hex[:12], user, cand.kind, cand.text,
                                  said.timestamp() + n / 1000, said.date().isoformat(),
                                  session, message_id, cand.event_date)
                replaced = self.updates.replaced(store, cand, words, vector, item)
                if not replaced and cand.changes:
                    replaced, vector = self.updates.continued(store, cand, words, vector,
                                                              item)
                store.add(item, self.analyzer.terms(item.text) if item.text != cand.text
                          else words, vector)
                if replaced:
                    store.supersede(replaced, item.id)
                stored.append(item)
        return stored

    def _refused(self, user: str, text: str, verdict) -> bool:
        """Return True for an utterance nothing may be kept of (flagged, personal info)."""
        if verdict is None and self.safety is not None:
            verdict = self.safety.check_input(text)
        if verdict is not None and verdict.flagged:
            return True
        if self.rules.is_personal(text):
            log.info('user %s: personal information is never remembered', user)
            return True
        return False

    def _extract(self, text: str, said: dt.datetime) -> List[Candidate]:
        rules = self.rules.extract(text, said)
        if self.llm is None:
            return rules
        found = self.llm.extract(text, said, self.rules)
        if self.extract_mode == 'llm':
            return found or rules  # the rules are the fallback when the model gives nothing
        seen = {c.text for c in rules}
        return rules + [c for c in found if not any(c.text in s or s in c.text for s in seen)]

    # ------------------------------------------------------------------ reading

    def recall(self, user: str, question: str, k: Optional[int] = None,
               today: Optional[dt.date] = None) -> List[MemoryItem]:
        """Return this child's items most relevant to the question, best first (at most k)."""
        store = self._store(user, create=False)
        if store is None or not len(store):
            return []
        k = self.top_k if k is None else k
        dense = store.dense(self.embedder.query(question))
        bm25 = dict(store.bm25.search(self.analyzer.terms(question), max(k * 4, 12)))
        # e5 cosines bunch up (0.85-0.95 for any two short sentences): scaled on a fixed range,
        # not min-max per question, which would blow a 0.01 difference up to the whole scale.
        best = max(bm25.values(), default=0.0) or 1.0
        fused = {i: self.fusion_weight * bm25.get(i, 0.0) / best + (1 - self.fusion_weight)
                 * min(1.0, max(0.0, (cos - DENSE_RANGE[0]) / (DENSE_RANGE[1] - DENSE_RANGE[0])))
                 for i, cos in dense.items()}
        items = store.get(fused)
        kinds = set(self.rules.topic_kinds(question))
        order = sorted(items.values(), key=lambda i: i.created_at)
        recency = {item.id: n / max(1, len(order) - 1) for n, item in enumerate(order)}
        for item in items.values():
            item.score = fused[item.id] + self.recency_boost * recency[item.id] + \
                (self.kind_boost if item.kind in kinds else 0.0)
        self.updates.newer_first(store, order, kinds)
        ranked = sorted(items.values(), key=lambda i: (-i.score, -i.created_at))
        return [i for i in ranked if dense.get(i.id, 0.0) >= self.min_dense
                or i.id in bm25 or i.kind in kinds][:k]

    def list(self, user: str, history: bool = False) -> List[MemoryItem]:
        """Return a child's items, oldest first (history: superseded ones too)."""
        store = self._store(user, create=False)
        return store.items(history) if store else []

    # ------------------------------------------------------------------ parent control

    def edit(self, user: str, item_id: str, text: str) -> MemoryItem:
        """Replace an item's words (a parent's correction)."""
        text = ' '.join(text.split())
        if not text:
            raise InputError('a memory item cannot be empty: forget it instead')
        store = self._store(user, create=False)
        vector = self.embedder.passages([text])[0]
        if store is None or not store.edit(item_id, text, self.analyzer.terms(text), vector):
            raise MemoryNotFound(f'{user} has no memory item {item_id}')
        return store.get([item_id])[item_id]

    def forget(self, user: str, item_id: str) -> bool:
        """Delete one item (and the history rows it replaced) from disk."""
        store = self._store(user, create=False)
        if store is None:
            return False
        history = [i.id for i in store.items(history=True) if i.superseded_by == item_id]
        return store.delete([item_id] + history) > 0

    def forget_matching(self, user: str, words: str) -> int:
        """Delete every item (history included) whose words contain `words`; return how many."""
        store = self._store(user, create=False)
        if store is None or not words:
            return 0
        return store.delete([i.id for i in store.items(history=True) if words in i.text])

    def clear(self, user: str) -> int:
        """Delete everything remembered of a child, file and all; return how many items."""
        store = self._store(user, create=False)
        if store is None:
            return 0
        count = len(store.items(history=True))
        with self._lock:
            self._stores.pop(user, None)
        store.close()
        for suffix in ('', '-journal', '-wal', '-shm'):
            Path(f'{store.path}{suffix}').unlink(missing_ok=True)
        return count

    def close(self) -> None:
        """Close every child's file."""
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()
