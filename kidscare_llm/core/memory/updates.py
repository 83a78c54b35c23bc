"""Which statement replaces which: corrections, changes, and newer statements first.

A child's memory keeps history: an item is never overwritten, a newer one supersedes it. This
module decides when, from the child's words ("콩이 아니고 콩순이야", "이제 ... 안 다녀", "아니
7월 19일!") and from what two statements share (a noun, a name, a kind), and at recall puts the
newer of two statements about the same thing first.
"""

import re
from typing import List, Tuple

from kidscare_llm.core.memory.items import MemoryItem
from kidscare_llm.core.memory.rules import Candidate
from kidscare_llm.core.memory.store import ChildStore

# Content morphemes that say nothing about which thing a statement is about.
GENERIC_TERMS = {'나', '내', '저', '제', '우리', '이제', '요즘', '요새', '하', '되', '있', '없',
                 '좋아하', '좋', '싫', '싫어하', '다니', '안', '진짜', '정말', '너무', '엄청',
                 '완전', '거', '것', '때', '지금', '더', '제일', '젤', '이름',
                 'i', 'my', 'me', 'is', 'am', 'are', 'was', 'the', 'a', 'an', 'have', 'has',
                 'now', 'like', 'do', 'don', 't', 's', 'm', 'to', 'on', 'in', 'and', 'it',
                 'we', 'our', 'of', 'got', 'one', 'new', 'anymore', 'really', 'so', 'very',
                 '개', '살', '마리', '명', '번', '시', '분', '층', '권', '장', '등'}
CONTINUE_S = 600  # a change said this soon after a statement may continue it
# The copula after a name ('콩이야', '나비야'): a correction replaces the name and it together.
COPULA = re.compile('이야|야|이에요|예요|이다|다|이래|래')


class Updates:
    """Finds what a new statement replaces, and ranks newer statements first at recall."""

    # Updates: a statement replaces an older one of its kind when they are this alike (with a
    # word of change such as '이제' and a shared noun), or near-duplicates without one.
    change_cosine, duplicate_cosine = 0.75, 0.95
    # Recall: an item about the same thing as a newer one of its kind ranks this much lower.
    older_penalty, answer_share = 0.3, 0.6
    # Recall: an item about the same thing as a newer one of its kind ranks this much lower.
    older_penalty, answer_share = 0.3, 0.6

    def __init__(self, analyzer, embedder, rules):
        self.analyzer, self.embedder, self.rules = analyzer, embedder, rules

    def replaced(self, store: ChildStore, cand: Candidate, terms: List[str], vector,
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
            shared = share_noun(nouns, old_terms)
            if shared and ((old.kind == item.kind and cosine >= self.duplicate_cosine) or
                           (cand.changes and cosine >= self.change_cosine)):
                replaced.append(old.id)
                if item.kind == 'other':
                    item.kind = old.kind
        return replaced

    def continued(self, store: ChildStore, cand: Candidate, terms: List[str], vector,
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
        replaced = [i for i in self.replaced(store, cand, terms + self.analyzer.terms(
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

    def newer_first(self, store: ChildStore, oldest_first: List[MemoryItem],
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
                if both_answer or share_noun(nouns, terms.get(new.id, ())):
                    # the newer answers whatever the older answered, and comes first
                    new.score = max(new.score, old.score + 0.01)
                    old.score -= self.older_penalty
                    break


def share_noun(nouns, terms) -> bool:
    """Return True when a word of one is, or holds, a word of the other ('치즈', '스트링치즈').

    One-syllable words count only whole: '금' is not '금요일'.
    """
    return any(a == b or (min(len(a), len(b)) > 1 and (a in b or b in a))
               for a in nouns if not a.isdigit()
               for b in terms if b not in GENERIC_TERMS and not b.isdigit())
