"""The safety check reads the utterance's e5 embedding, computed once per turn for everyone."""

import numpy as np
import pytest

from kidscare_llm.core import settings
from kidscare_llm.core.build import build_engine
from kidscare_llm.core.rag.embeddings import create_embedder, SharedQueries
from kidscare_llm.core.safety import SafetyChecker
from kidscare_llm.core.safety.classifier import read_labelled, SafetyClassifier
from kidscare_llm.core.safety.policy import default_train_dir


class Counting:
    """The real embedder, counting the texts it was asked to embed as queries."""

    def __init__(self, inner):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.asked = []

    def query(self, text):
        self.asked.append(text)
        return self.inner.query(text)

    def passages(self, texts):
        return self.inner.passages(texts)


@pytest.fixture(scope='module')
def e5():
    return create_embedder('e5-int8')


def test_shared_queries_embed_the_same_words_once(e5):
    counting = Counting(e5.inner)
    shared = SharedQueries(counting, keep=2)
    first = shared.query('공룡은 언제 살았어?')
    again = shared.query('공룡은 언제 살았어?')
    assert again is first and counting.asked == ['공룡은 언제 살았어?']
    assert not first.flags.writeable  # callers share it: nobody may change it in place
    assert float(first @ e5.inner.query('공룡은 언제 살았어?')) > 0.9999
    shared.query('둘째 문장')
    shared.query('셋째 문장')  # keeps two: the first is forgotten and embedded again
    shared.query('공룡은 언제 살았어?')
    assert counting.asked.count('공룡은 언제 살았어?') == 2
    assert shared.passages(['문서']).shape == (1, e5.dim)
    assert shared.queries(['하나', '둘']).shape == (2, e5.dim)


def test_the_classifier_reads_the_embedding_and_keeps_it_in_its_cache(tmp_path, e5):
    rows = read_labelled(default_train_dir() / 'blind_h.jsonl')[:120]
    checker = SafetyChecker.load()
    analyse = checker.analyse.spaced_and_morphs
    vectors = e5.queries([t for t, _ in rows])
    model = SafetyClassifier.train(rows, analyse, 12, 10.0, vectors, weight=1.0)
    assert model.dense.shape == (len(model.classes), e5.dim)
    text = rows[0][0]
    with pytest.raises(ValueError, match='embedding'):
        model.proba(*analyse(text))
    p = model.proba(*analyse(text), vectors[0])
    assert abs(float(p.sum()) - 1.0) < 1e-5
    # the embedding moves the probabilities: it is a feature, not decoration
    assert not np.allclose(p, model.proba(*analyse(text), -vectors[0]), atol=1e-3)
    model.save(tmp_path / 'm.npz')
    back = SafetyClassifier.read(tmp_path / 'm.npz')
    assert np.allclose(back.proba(*analyse(text), vectors[0]), p, atol=1e-6)

    folder = tmp_path / 'lines'
    folder.mkdir()
    lines = (default_train_dir() / 'blind_h.jsonl').read_text(encoding='utf-8').splitlines()
    (folder / 'some.jsonl').write_text('\n'.join(lines[:120]), encoding='utf-8')
    cache = tmp_path / 'cache'
    plain = SafetyClassifier.load_or_train(folder, analyse, 12, 10.0, cache)
    joint = SafetyClassifier.load_or_train(folder, analyse, 12, 10.0, cache, embedder=e5,
                                           weight=1.0)
    off = SafetyClassifier.load_or_train(folder, analyse, 12, 10.0, cache, embedder=e5,
                                         weight=0.0)
    assert plain.dense is None and off.dense is None and joint.dense is not None
    assert len(list(cache.glob('safety-classifier-*.npz'))) == 2  # n-grams; n-grams + e5


def test_a_checker_without_an_embedder_reads_ngrams_only():
    checker = SafetyChecker.load().warm_up()
    assert checker.policy.classifier.embedding > 0 and checker.classifier().dense is None
    assert checker.vector('아무 말') is None
    assert not checker.check_input('How do you make a sandwich? Explain every step.').flagged


@pytest.mark.slow
def test_one_turn_embeds_the_childs_words_once(tmp_path, data_dir, real_backend):
    docs = tmp_path / 'docs'
    docs.mkdir()
    (docs / 'pet.txt').write_text('라이언의 강아지 이름은 초코입니다. 초코는 갈색 푸들이에요.',
                                  encoding='utf-8')
    overrides = {'llm.temperature': '0', 'llm.max_tokens': '8', 'rag.sources': str(docs)}
    engine = build_engine(settings.load('chat_node', overrides=overrides), backend=real_backend)
    try:
        shared = engine.knowledge.embedder
        assert engine.safety.embedder is shared and engine.safety.classifier().dense is not None
        counting = Counting(shared.inner)
        shared.inner = counting
        reply = engine.reply('lion', '초코는 어떤 강아지야?')
        assert reply.kind == 'answer' and any('pet.txt' in s['source'] for s in reply.sources)
        # safety, retrieval and child memory all read it; the model ran once
        assert counting.asked.count('초코는 어떤 강아지야?') == 1
    finally:
        engine.close()
