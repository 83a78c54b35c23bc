"""The learned fusion: it adapts to the question, and a real knowledge base ranks with it.

With the same two candidates, a question whose words a passage shares leans on BM25 and one
written in other words leans on the cosine; every candidate of either retriever is scored by
both; a live switch to the first rounds' fixed weight still works.
"""

from pathlib import Path

import pytest

from kidscare_llm.core.rag.embeddings import create_embedder
from kidscare_llm.core.rag.fusion import features, fuse_learned
from kidscare_llm.core.rag.knowledge import KnowledgeBase
from kidscare_llm.core.rag.korean import KoreanAnalyzer


def test_the_weight_follows_how_much_of_the_question_a_passage_shares():
    # 'words' holds the question's words (best BM25), 'meaning' the best cosine.
    cosines = {'words': 0.84, 'meaning': 0.90, 'other': 0.80}
    shared = {'words': (12.0, 0.9), 'meaning': (3.0, 0.2), 'other': (1.0, 0.1)}
    unshared = {'words': (4.0, 0.3), 'meaning': (3.0, 0.2), 'other': (1.0, 0.1)}
    a, b = fuse_learned(shared, cosines), fuse_learned(unshared, cosines)
    assert max(a, key=a.get) == 'words'
    assert max(b, key=b.get) == 'meaning'
    # the same passage is worth less when the question shares few words with anything
    assert a['words'] > b['words']


def test_features_score_every_candidate_and_wait_for_missing_vectors():
    got = features({'a': (10.0, 1.0), 'b': (0.0, 0.0), 'c': (5.0, 0.5)},
                   {'a': 0.9, 'b': 0.8})  # 'c' has no vector yet: the lowest cosine
    assert got['a'][:3] == (1.0, 1.0, 1.0)
    assert got['b'][:2] == (0.0, 0.0) and got['c'][:2] == (0.5, 0.0)
    assert features({}, {}) == {} and fuse_learned({}, {}) == {}


@pytest.mark.slow
def test_a_knowledge_base_finds_both_kinds_of_question(tmp_path: Path):
    kb = KnowledgeBase(tmp_path, 'kb', create_embedder('e5-int8'), KoreanAnalyzer(),
                       chunk_chars=80, overlap=0, min_bm25=1.0)
    kb.add_text('animals.txt', '동물', '고래는 새끼에게 젖을 먹이는 포유류이다. '
                '펭귄은 날지 못하는 새이지만 바닷속에서 빠르게 헤엄친다. '
                '벌은 꽃가루를 옮겨 식물이 열매를 맺게 돕는다.')
    kb.add_text('sky.txt', '하늘', '무지개는 햇빛이 물방울에서 꺾이고 반사되어 생긴다. '
                '달은 태양빛을 반사해서 밝게 보인다.')
    assert kb.embedding_status()['done'] == len(kb)  # small documents: embedded at once
    words = kb.search('펭귄은 바닷속에서 헤엄친다', k=1)[0]
    assert '펭귄' in words.text and words.bm25 > 0 and words.dense > 0.8
    meaning = kb.search('비 온 뒤 하늘에 생기는 일곱 색 띠의 원리', k=1)[0]
    assert '무지개' in meaning.text
    got = kb.scored('젖먹이 바다 동물')
    assert set(got.explained) == set(got.bm25) | set(got.dense)  # scored by both
    assert all(c in got.cosines for c in got.explained)
    kb.fusion, kb.fusion_weight = 'fixed', 1.0  # live switch: BM25 alone decides
    assert '펭귄' in kb.search('펭귄은 바닷속에서 헤엄친다', k=1)[0].text
    kb.close()
