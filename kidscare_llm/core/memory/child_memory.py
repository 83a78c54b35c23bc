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
import re
import threading
from typing import Dict, List, Optional, Tuple
import uuid

from kidscare_llm.core.errors import InputError
from kidscare_llm.core.memory.items import MemoryItem
from kidscare_llm.core.memory.rules import Candidate, RuleExtractor
from kidscare_llm.core.memory.store import ChildStore, user_file

log = logging.getLogger(__name__)
# Content morphemes that say nothing about which thing a statement is about.
GENERIC_TERMS = {'나', '내', '저', '제', '우리', '이제', '요즘', '요새', '하', '되', '있', '없',
                 '좋아하', '좋', '싫', '싫어하', '다니', '안', '진짜', '정말', '너무', '엄청',
                 '완전', '거', '것', '때', '지금', '더', '제일', '젤', '이름',
                 'i', 'my', 'me', 'is', 'am', 'are', 'was', 'the', 'a', 'an', 'have', 'has',
                 'now', 'like', 'do', 'don', 't', 's', 'm', 'to', 'on', 'in', 'and', 'it',
                 'we', 'our', 'of', 'got', 'one', 'new', 'anymore', 'really', 'so', 'very',
                 '개', '살', '마리', '명', '번', '시', '분', '층', '권', '장', '등'}
CONTINUE_S = 600  # a change said this soon after a statement may continue it
DENSE_RANGE = (0.80, 0.95)  # cosines mapped onto 0..1 for fusion
# The copula after a name ('콩이야', '나비야'): a correction replaces the name and it together.
COPULA = re.compile('이야|야|이에요|예요|이다|다|이래|래')


class MemoryNotFound(InputError):
    """No memory item with that id for that child."""


class ChildMemory:
    """Per-child memory items: extraction, storage, updates, hybrid recall, parent control."""

    # Recall: the BM25 share of the fused score, and the nudges for an item of the kind asked
    # about and for the newest statement (tuned on data/memory/dev.jsonl, docs/memory.md).
    fusion_weight, kind_boost, recency_boost = 0.3, 0.25, 0.1
    # Updates: a statement replaces an older one of its kind when they are this alike (with a
    # word of change such as '이제' and a shared noun), or near-duplicates without one.
    change_cosine, duplicate_cosine = 0.75, 0.95
    # Recall: an item about the same thing as a newer one of its kind ranks this much lower.
    older_penalty, answer_share = 0.3, 0.6

    def __init__(self, folder: Path, embedder, analyzer, safety=None, extract: str = 'rules',
                 backend=None, top_k: int = 3, min_dense: float = 0.80,
                 rules: Optional[Path] = None):
        self.folder = Path(folder)
        self.embedder, self.analyzer, self.safety = embedder, analyzer, safety
        self.rules = RuleExtractor(analyzer, rules)
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
                replaced = self._replaced(store, cand, words, vector, item)
                if not replaced and cand.changes:
                    replaced, vector = self._continued(store, cand, words, vector, item)
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

    def _replaced(self, store: ChildStore, cand: Candidate, terms: List[str], vector,
                  item: MemoryItem) -> List[str]:
        """Return the active items this one replaces; rewrite a correction's words."""
        active = store.items()
        if cand.corrects:
            old, new = cand.corrects
            said_old = re.compile(rf'(?<![가-힣A-Za-z]){re.escape(old)}({COPULA.pattern})?')
            hits = [i for i in active if said_old.search(i.text)]
            if hits:  # the one the correction is most alike ('준혁이 말고 건우랑 더 친해')
                base = max(hits, key=lambda i: (i.kind == cand.kind,
                                                float(store.vector(i.id) @ vector)))
                noun, word = self._new_words(cand.text, new)
                fixed = said_old.sub(lambda m: word if m.group(1) else noun, base.text)
                item.text = f'{fixed} ({cand.text})'
                item.kind = base.kind
                item.event_date = item.event_date or base.event_date
                return [i.id for i in hits if i.kind == base.kind]
        if cand.corrects_last and active and active[-1].session == item.session:
            last = active[-1]  # '아니 7월 19일!' right after '내 생일 7월 9일이야'
            item.kind = last.kind if item.kind == 'other' else item.kind
            return [last.id]
        nouns = {t for t in terms if t not in GENERIC_TERMS}
        names = self._names(cand.text) if cand.changes else set()
        replaced = []
        for old in active:
            cosine = float(store.vector(old.id) @ vector)
            old_terms = self.analyzer.terms(old.text)
            if item.kind not in (old.kind, 'other') and not names & set(old_terms):
                continue  # another kind of thing, unless the same someone ('나린이 이사 갔어')
            shared = _share_noun(nouns, old_terms)
            if shared and ((old.kind == item.kind and cosine >= self.duplicate_cosine) or
                           (cand.changes and cosine >= self.change_cosine)):
                replaced.append(old.id)
                if item.kind == 'other':
                    item.kind = old.kind
        return replaced

    def _continued(self, store: ChildStore, cand: Candidate, terms: List[str], vector,
                   item: MemoryItem):
        """Read a change that names no topic with the child's statement just before it.

        "태권도 관장님이 바뀌었어" then "그래서 요즘은 월수금에 가": the second replaces "화요일이랑
        목요일에 태권도 가" and is kept with the words that say what it is about.
        """
        recent = [i for i in store.items() if i.session == item.session and
                  0 <= item.created_at - i.created_at <= CONTINUE_S]
        if not recent:
            return [], vector
        before = recent[-1]
        replaced = [i for i in self._replaced(store, cand, terms + self.analyzer.terms(
            before.text), vector, item) if i != before.id]
        if replaced:
            item.text = f'{before.text} {item.text}'
            item.kind = before.kind if item.kind == 'other' else item.kind
            vector = self.embedder.passages([item.text])[0]
        return replaced, vector

    def _names(self, text: str) -> set:
        """Return the names in a text (proper nouns, capitalised foreign words), lower-cased."""
        return {t.form.lower() for t in self.analyzer.tokenize(text)
                if t.tag == 'NNP' or (t.tag == 'SL' and t.form[:1].isupper() and t.form != 'I')}

    def _new_words(self, clause: str, new: str) -> Tuple[str, str]:
        """Return the noun a correction puts in and its word as said ('콩순', '콩순이야')."""
        start = clause.rfind(new)
        for tok in self.analyzer.tokenize(clause):
            if tok.start >= start and tok.tag.startswith(('NN', 'SL', 'SN')):
                left = clause.rfind(' ', 0, tok.start) + 1
                if tok.tag == 'NNB' and left > start:  # a counter: '네 살', '두 마리'
                    left = clause.rfind(' ', 0, left - 1) + 1
                right = clause.find(' ', tok.start)
                word = clause[left:right if right >= 0 else len(clause)].strip(',.!?~')
                return (word if tok.tag == 'NNB' else tok.form), word
        word = new.split()[0]
        return word, word

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
        self._prefer_newer(store, order, kinds)
        ranked = sorted(items.values(), key=lambda i: (-i.score, -i.created_at))
        return [i for i in ranked if dense.get(i.id, 0.0) >= self.min_dense
                or i.id in bm25 or i.kind in kinds][:k]

    def _prefer_newer(self, store: ChildStore, oldest_first: List[MemoryItem],
                      asked: List[str]) -> None:
        """Rank a statement below a newer one of its kind about the same thing.

        Children update without saying so ('내 짝꿍 서윤이야' weeks after '짝꿍은 지호야'). The
        same thing: the two share a noun, or both are of the kind the question asks about and
        both answer it well. The older item stays (it may be a second, true fact), a step
        behind; an addition ('키위도 좋아') never pushes one back.
        """
        terms = store.terms(i.id for i in oldest_first)
        best = max((i.score for i in oldest_first), default=0.0)
        for n, old in enumerate(oldest_first):
            nouns = {t for t in terms.get(old.id, ()) if t not in GENERIC_TERMS}
            for new in oldest_first[n + 1:]:
                if new.kind != old.kind or self.rules.adds(new.text):
                    continue
                both_answer = old.kind in asked and min(old.score, new.score) >= \
                    self.answer_share * best
                if both_answer or _share_noun(nouns, terms.get(new.id, ())):
                    # the newer answers whatever the older answered, and comes first
                    new.score = max(new.score, old.score + 0.01)
                    old.score -= self.older_penalty
                    break

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


def _share_noun(nouns, terms) -> bool:
    """Return True when a word of one is, or holds, a word of the other ('치즈', '스트링치즈').

    One-syllable words count only whole: '금' is not '금요일'.
    """
    return any(a == b or (min(len(a), len(b)) > 1 and (a in b or b in a))
               for a in nouns if not a.isdigit()
               for b in terms if b not in GENERIC_TERMS and not b.isdigit())
