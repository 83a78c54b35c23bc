"""The caregiver console over HTTP (Starlette's test client): login, CSRF, every page, escaping.

The console reads a real session database and alerts file and asks a real CaregiverDesk
(in-process link) to act, as the chat node would over caregiver_command.
"""

import json
import os
import re
import stat
import subprocess
import time
from types import SimpleNamespace

import pytest
from test_console_core import Engine

from conftest import BIN
from kidscare_llm.console.app import Console, create_app
from kidscare_llm.console.link import DeskLink
from kidscare_llm.console.security import check_bind, is_loopback, PasswordFile
from kidscare_llm.core.caregiver.commands import CaregiverDesk
from kidscare_llm.core.errors import ConfigError

starlette = pytest.importorskip('starlette.testclient')
PASSWORD = 'correct horse battery'
XSS = '<script>alert(1)</script>'


def raise_alert(engine, user, text):
    verdict = SimpleNamespace(category='crisis', action='alert', reason='test')
    engine.store.add(engine.store.current(user), 'user', text)
    engine.store.add(engine.store.current(user), 'assistant', '어른에게 꼭 말해 줘.')
    engine.alerts.raise_alert(user, engine.store.current(user), text, verdict)


@pytest.fixture
def site(tmp_path):
    """A data dir with two children and one alert, a desk, a console with a password set."""
    engine = Engine(tmp_path)
    desk = CaregiverDesk(engine, '', 0, 90)
    desk.reply('mina', XSS)
    desk.reply('lion', '안녕 토리')
    raise_alert(engine, 'mina', '아무도 나를 안 좋아해 ' + XSS)
    console = Console(tmp_path, DeskLink(desk), 'ko', 1.0, 3, 1)
    console.passwords.set(PASSWORD)
    return SimpleNamespace(engine=engine, desk=desk, console=console, data=tmp_path,
                           client=starlette.TestClient(create_app(console)))


def csrf(client, path='/login'):
    page = client.get(path).text
    return re.search(r'name="csrf" content="([^"]+)"', page).group(1)


def login(client, password=PASSWORD):
    return client.post('/login', data={'csrf': csrf(client), 'password': password},
                       follow_redirects=False)


def test_every_page_needs_a_login_once_a_password_is_set(site):
    client = site.client
    for path in ('/', '/children', '/children/mina', '/rules', '/data', '/alerts/list'):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers['location'] == '/login', path
    assert client.get('/events').status_code == 403
    assert 'mina' not in client.get('/login').text


def test_state_changes_need_a_session_and_its_csrf_token(site):
    fresh = starlette.TestClient(create_app(site.console))
    assert fresh.post('/rules', data={'user': '*', 'quiet': '21:00-07:00'}).status_code == 403
    assert fresh.post('/', data={'x': '1'}).status_code in (403, 405)
    assert login(site.client).status_code == 303
    token = csrf(site.client, '/rules')
    assert site.client.post('/rules', data={'user': '*', 'quiet': '21:00-07:00'}
                            ).status_code == 403  # logged in, but no token
    assert site.client.post('/rules', data={'user': '*', 'quiet': '21:00-07:00',
                                            'csrf': 'x' + token}).status_code == 403
    assert site.desk.rules.effective('mina').quiet == ''
    done = site.client.post('/rules', data={'user': '*', 'quiet': '21:00-07:00', 'csrf': token})
    assert done.status_code == 200 and site.desk.rules.effective('mina').quiet == '21:00-07:00'
    assert fresh.post('/login', data={'password': PASSWORD}).status_code == 403  # no CSRF


def test_rules_page_sets_switches_and_chosen_alerts(site):
    from kidscare_llm.core.safety import SafetyChecker

    site.engine.safety = SafetyChecker.load()
    assert login(site.client).status_code == 303
    page = site.client.get('/rules').text
    assert 'name="voice"' in page and 'name="strict"' in page
    assert re.search(r'value="self_harm" checked disabled', page)  # the policy's, fixed
    token = csrf(site.client, '/rules')
    done = site.client.post('/rules', data={'user': 'mina', 'voice': 'off', 'strict': 'on',
                                            'csrf': token})
    assert done.status_code == 200 and not site.desk.rules.speaks('mina')
    assert site.desk.rules.strict('mina') and site.desk.rules.speaks('lion')
    chosen = site.client.post('/rules/alerts', data={'csrf': token,
                                                     'alert': ['bullying', 'self_harm']})
    assert chosen.status_code == 200 and site.desk.rules.alerts_also('bullying')
    assert re.search(r'value="bullying" checked>', chosen.text)
    site.client.post('/rules/alerts', data={'csrf': token})  # none ticked: bullying off again
    assert not site.desk.rules.alerts_also('bullying')
    actions = [e['action'] for e in site.console.audit.recent()]
    assert 'set alerts' in actions and 'set rule' in actions


def test_login_cookie_rate_limit_and_audit(site):
    response = login(site.client)
    cookie = response.headers['set-cookie']
    assert 'HttpOnly' in cookie and 'SameSite=strict' in cookie
    assert site.client.get('/').status_code == 200
    other = starlette.TestClient(create_app(site.console))
    codes = [login(other, 'wrong password').status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    assert login(other).status_code == 429  # blocked, even with the right password now
    actions = [e['action'] for e in site.console.audit.recent()]
    assert 'login blocked (too many attempts)' in actions and actions.count('login failed') == 3
    token = csrf(site.client, '/')
    assert site.client.post('/logout', data={'csrf': token}, follow_redirects=False
                            ).status_code == 303
    assert site.client.get('/', follow_redirects=False).status_code == 303


def test_childrens_words_are_text_never_html(site):
    login(site.client)
    for path in ('/', '/children/mina'):
        page = site.client.get(path).text
        assert XSS not in page, path
        assert '&lt;script&gt;alert(1)&lt;/script&gt;' in page, path
    page = site.client.get('/').text
    assert '어른에게 꼭 말해 줘.' in page  # the robot's answer beside the alert


def test_alert_acknowledged_with_a_note_survives_a_restart(site):
    login(site.client)
    page = site.client.get('/').text
    assert re.search(r'id="banner"[^>]*>', page).group(0).find('hidden') < 0  # shown
    alert_id = re.search(r'action="/alerts/([0-9a-f]+)/ack"', page).group(1)
    token = csrf(site.client, '/')
    site.client.post(f'/alerts/{alert_id}/ack', data={'csrf': token, 'note': '이야기 나눴어요'})
    again = Console(site.data, site.console.link, 'ko', 1.0, 3, 1)
    assert again.acks.all()[alert_id]['note'] == '이야기 나눴어요'
    assert again.reader.unacknowledged() == 0
    page = site.client.get('/').text
    assert '이야기 나눴어요' in page and f'/alerts/{alert_id}/ack' not in page
    assert 'hidden' in re.search(r'id="banner"[^>]*>', page).group(0)  # nothing left to see
    assert site.client.post('/alerts/nope/ack', data={'csrf': token}).status_code == 404


def test_live_stream_announces_a_new_alert(site):
    login(site.client)
    with site.client.stream('GET', '/events?once=1') as stream:
        lines = (line for line in stream.iter_lines() if line)
        assert next(lines).startswith('retry:')
        raise_alert(site.engine, 'lion', '집 주소는 ...')
        site.console.on_alert('{}')
        received = [next(lines) for _ in range(2)]
    assert received[0] == 'event: alert' and json.loads(received[1][6:]) == {'unacked': 2}


def test_children_page_transcript_chart_and_sources(site):
    login(site.client)
    page = site.client.get('/children').text
    assert '/children/mina' in page and '/children/lion' in page
    page = site.client.get('/children/lion').text
    assert page.count('class="bar"') == 14
    assert '안녕 토리' in page and 'a.txt' in page  # the reply's source
    assert site.client.get('/children/nobody').status_code == 404


def test_export_holds_exactly_that_child_and_delete_needs_the_confirmation(site):
    login(site.client)
    token = csrf(site.client, '/data')
    out = site.client.post('/data/export', data={'csrf': token, 'user': 'lion'})
    assert out.headers['content-disposition'] == 'attachment; filename="kidscare-lion.json"'
    text = out.text
    assert '안녕 토리' in text and 'alert(1)' not in text and '아무도' not in text
    wrong = site.client.post('/data/delete', data={'csrf': token, 'user': 'mina',
                                                   'confirm': 'mna'})
    assert wrong.status_code == 400 and 'mina' in site.engine.store.users()
    done = site.client.post('/data/delete', data={'csrf': token, 'user': 'mina',
                                                  'confirm': 'mina'})
    assert done.status_code == 200 and site.engine.store.users() == ['lion']
    db = site.engine.store._db
    assert db.execute("SELECT COUNT(*) FROM messages WHERE session_id LIKE 'mina%'"
                      ).fetchone()[0] == 0
    assert 'mina' not in (site.data / 'alerts.jsonl').read_text(encoding='utf-8')
    audit = site.client.get('/data').text
    assert 'delete child' in audit and 'export child' in audit


def test_pages_load_nothing_from_outside_and_forbid_framing(site):
    login(site.client)
    for path in ('/', '/children', '/children/mina', '/rules', '/data', '/login'):
        response = site.client.get(path)
        assert "default-src 'self'" in response.headers['content-security-policy']
        urls = re.findall(r'(?:src|href)="(https?:)?//', response.text)
        assert not urls, path
    assert site.client.get('/static/app.js').status_code == 200


def test_without_a_password_only_loopback_is_trusted(tmp_path):
    console = Console(tmp_path, None, 'en', 1.0, 3, 1)
    remote = starlette.TestClient(create_app(console), client=('192.168.1.20', 5000))
    assert remote.get('/', follow_redirects=False).status_code == 303
    local = starlette.TestClient(create_app(console), client=('127.0.0.1', 5000))
    page = local.get('/')
    assert page.status_code == 200 and 'No password is set' in page.text
    assert is_loopback('127.0.0.1') and is_loopback('::1') and not is_loopback('0.0.0.0')
    with pytest.raises(ConfigError, match='--set-password'):
        check_bind('0.0.0.0', console.passwords)


def test_cli_refuses_the_network_without_a_password_and_sets_one(tmp_path):
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(tmp_path))
    start = time.monotonic()
    proc = subprocess.run([str(BIN / 'kidscare-llm'), 'console', '-p', 'console.bind=0.0.0.0'],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and time.monotonic() - start < 8
    assert 'no password is set' in proc.stderr and 'Traceback' not in proc.stderr
    short = subprocess.run([str(BIN / 'kidscare-llm'), 'console', '--set-password'], env=env,
                           input='short\n', capture_output=True, text=True, timeout=30)
    assert short.returncode == 1 and 'at least 8' in short.stderr
    proc = subprocess.run([str(BIN / 'kidscare-llm'), 'console', '--set-password'], env=env,
                          input=PASSWORD + '\n', capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    stored = PasswordFile(tmp_path / 'console' / 'password')
    assert stored.verify(PASSWORD) and not stored.verify(PASSWORD + 'x')
    assert PASSWORD not in stored.path.read_text()
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600
