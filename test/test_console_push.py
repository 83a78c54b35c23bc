"""Alert push (console/push.py): a home webhook or a local command, retried, failures shown.

A real HTTP server on loopback stands for the home ntfy; real commands stand for a local
notifier. Backoff sleeps are recorded instead of slept.
"""

import http.server
import json
import sys
import threading
from types import SimpleNamespace

import pytest
from test_console_http import login, site  # noqa: F401 (a fixture)

from kidscare_llm.console.push import check_url, Pusher
from kidscare_llm.core.errors import ConfigError

ALERT = {'time': '2026-01-02T21:03:00+0900', 'user': 'mina', 'session': 's1', 'id': 'abc123',
         'category': 'crisis', 'utterance': '아무도 나를 안 좋아해'}


@pytest.fixture
def webhook():
    """A loopback HTTP server that answers 200 after `fail` 500s; yields (url, bodies, state)."""
    bodies, state = [], {'fail': 0}

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers['Content-Length']))
            bodies.append(json.loads(body))
            failing = state['fail'] > 0
            state['fail'] -= 1
            self.send_response(500 if failing else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(('127.0.0.1', 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_port}/tori', bodies, state
    server.shutdown()


def test_only_home_network_webhooks_are_accepted():
    for url in ('http://192.168.1.20:8080/tori', 'http://10.0.0.5/x', 'https://ntfy.lan/x',
                'http://127.0.0.1:2586/tori', 'http://[fe80::1]/x'):  # a name is checked when used
        check_url(url)
    for url in ('http://8.8.8.8/x', 'http://[2001:4860::8888]/x', 'ftp://192.168.1.2/x', 'x'):
        with pytest.raises(ConfigError):
            check_url(url)


def test_a_webhook_gets_the_alert_without_the_childs_words_retried_with_backoff(
        tmp_path, webhook):
    url, bodies, state = webhook
    state['fail'] = 2
    slept = []
    pusher = Pusher(url, '', 5, tmp_path / 'push.jsonl', sleep=slept.append)
    assert pusher.deliver(ALERT)
    assert len(bodies) == 3 and slept == [1.0, 2.0]
    assert bodies[-1]['user'] == 'mina' and bodies[-1]['category'] == 'crisis'
    assert '안 좋아해' not in json.dumps(bodies[-1], ensure_ascii=False)
    failures = pusher.failures()
    assert [f['attempt'] for f in failures] == [2, 1] and not any(f['final'] for f in failures)
    assert 'HTTP 500' in failures[0]['error']
    pusher.close()


def test_a_command_gets_the_alert_on_stdin_and_a_failing_one_is_recorded(tmp_path):
    out = tmp_path / 'got.json'
    script = f'import sys; open({str(out)!r}, "w").write(sys.stdin.read())'
    command = f'{sys.executable} -c {json.dumps(script)}'
    assert Pusher('', command, 3, tmp_path / 'a.jsonl').deliver(ALERT)
    assert json.loads(out.read_text())['id'] == 'abc123'
    slept = []
    failing = Pusher('', f'{sys.executable} -c "import sys; sys.exit(3)"', 3,
                     tmp_path / 'b.jsonl', sleep=slept.append)
    assert not failing.deliver(ALERT)
    assert slept == [1.0, 2.0]
    failures = failing.failures()
    assert len(failures) == 3 and failures[0]['final'] and 'exited with 3' in failures[0]['error']
    missing = Pusher('', '/nonexistent/notify-parent', 1, tmp_path / 'c.jsonl')
    assert not missing.deliver(ALERT) and missing.failures()[0]['final']


def test_alerts_from_the_topic_are_pushed_and_failures_shown_on_the_alerts_page(
        site, tmp_path, webhook):  # noqa: F811
    url, bodies, state = webhook
    state['fail'] = 99
    site.console.pusher = Pusher(url, '', 2, tmp_path / 'push.jsonl', backoff_s=0.01)
    verdict = SimpleNamespace(category='crisis', action='alert', reason='test')
    alert = site.engine.alerts.raise_alert('mina', 's1', '<b>도와줘</b>', verdict)
    site.console.on_alert(json.dumps(alert, ensure_ascii=False))
    site.console.on_alert('not json')
    site.console.pusher.close()  # waits for what was queued
    assert len(bodies) == 2 and bodies[0]['id']
    login(site.client)
    page = site.client.get('/').text
    assert 'id="pushfailures"' in page and 'HTTP 500' in page and url in page
