"""Draw docs/screenshots/console-*.png: every console page, desktop and phone widths.

    .venv/bin/python scripts/screenshots.py        (needs Debian's chromium + chromium-driver)

A demo data dir (two children, a week of talk, an alert, a rule) is written to a temporary
folder; the console serves it on loopback with an in-process caregiver desk standing in for
the chat node; headless Chromium logs in and saves each page.
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
sys.path.insert(0, str(ROOT / 'test'))
OUT = ROOT / 'docs' / 'screenshots'
PASSWORD = 'screenshot-password'
PAGES = (('alerts', '/'), ('children', '/children'), ('child', '/children/라이언'),
         ('rules', '/rules'), ('data', '/data'))
SIZES = (('desktop', 1280, 900), ('phone', 390, 844))


def demo(data: Path):
    """Write two children's conversations over a week, an alert and a rule; return the desk."""
    from kidscare_llm.core.caregiver.commands import CaregiverDesk
    from test_console_core import Engine

    engine = Engine(data)
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
    return desk


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

    from conftest import free_port
    from kidscare_llm.console.app import Console
    from kidscare_llm.console.link import DeskLink
    from test_console_dds import open_browser

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        console = Console(data, DeskLink(demo(data)), 'ko', 1.0, 5, 20)
        console.passwords.set(PASSWORD)
        port = free_port()
        server = serve(console, port)
        OUT.mkdir(parents=True, exist_ok=True)
        try:
            for size, width, height in SIZES:
                page = open_browser(data, width, height)
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
                finally:
                    page.quit()
        finally:
            server.should_exit = True
    print(f'{dt.datetime.now():%H:%M} wrote {len(SIZES) * (len(PAGES) + 1)} screenshots to {OUT}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
