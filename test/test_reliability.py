"""A robot a parent can leave running: bad input, floods, kill -9, bad start-up configuration."""

import os
from pathlib import Path
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import BIN
from kidscare_llm.core.chat.persona import packaged_persona
from ros2_wire import Peer

pytestmark = pytest.mark.slow
FAST = ['-p', 'llm.temperature=0', '-p', 'llm.max_tokens=40', '-p', 'chat.queue_size=4']
OUT = ('/robot_reply_partial', '/robot_reply_stream')
# Domains of their own (valid ids end at 232): participants other test modules leave behind
# in this process must not subscribe to the flood, and the module's node must not answer for
# the one killed.
DOMAIN = 201 + int(os.environ['ROS_DOMAIN_ID']) % 15
KILL_DOMAIN = 216 + int(os.environ['ROS_DOMAIN_ID']) % 15


def start_node(data: Path, *params: str, domain: int = DOMAIN) -> subprocess.Popen:
    """Start `kidscare-llm node` over plain DDS, its log in data.parent/node.log (appended)."""
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(data), PYTHONUNBUFFERED='1',
               ROS_DOMAIN_ID=str(domain))
    with (data.parent / 'node.log').open('ab') as out:
        return subprocess.Popen([str(BIN / 'kidscare-llm'), 'node', '--transport', 'dds',
                                 *FAST, *params], env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(peer: Peer, data: Path, proc: subprocess.Popen, starts: int = 1) -> None:
    """Wait until the node's worker is past the warm start (the log's starts-th) and matched.

    A node killed with -9 stays matched until its lease ends: the log tells the new one apart.
    """
    log = data.parent / 'node.log'
    deadline = time.monotonic() + 120
    while log.read_text(errors='replace').count('persona prefix evaluated') < starts:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    ok = peer.wait_matched(writes=['/user_utterance', '/chat_node/session'],
                           reads=['/robot_reply', *OUT])
    assert ok, f'chat node not discovered; log: {log.read_text()[-3000:]}'


def replies_until_quiet(peer: Peer, expected: int, quiet: float = 20.0,
                        timeout: float = 180.0) -> list:
    """Collect /robot_reply messages until `expected` came, or none came for `quiet` seconds."""
    got, last, deadline = [], time.monotonic(), time.monotonic() + timeout
    while len(got) < expected and time.monotonic() - last < quiet and \
            time.monotonic() < deadline:
        new = peer.take('/robot_reply')
        if new:
            got += new
            last = time.monotonic()
        time.sleep(0.02)
    return got


def ask(peer: Peer, text, timeout: float = 60.0):
    """Publish one utterance (str, or bytes for raw CDR) and wait for its final reply."""
    for name in OUT + ('/robot_reply',):
        peer.take(name)
    peer.publish('/user_utterance', text)
    reply, _ = peer.collect_until('/robot_reply', OUT, timeout)
    return reply


@pytest.fixture(scope='module')
def node(tmp_path_factory):
    data = tmp_path_factory.mktemp('reliable') / 'data'
    data.mkdir()
    proc = start_node(data)
    peer = Peer(DOMAIN, keep_all=True)
    try:
        wait_ready(peer, data, proc)
        yield peer, data, proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def node_log(data: Path) -> str:
    return (data.parent / 'node.log').read_text(errors='replace')


def test_bad_utterances_each_get_a_clear_outcome_and_the_node_stays_up(node):
    peer, data, proc = node
    for blank in ('', '   \n\t '):
        peer.publish('/user_utterance', blank)
    time.sleep(1.0)
    assert node_log(data).count('ignored an empty utterance') >= 2
    # 1 MB of Hangul, 3 MB of UTF-8
    assert ask(peer, '가' * 1_000_000) == packaged_persona().line('too_long')
    assert ask(peer, b'hello \xff\xfe robot') is not None  # invalid UTF-8: bad bytes replaced
    assert 'invalid UTF-8, bad bytes replaced' in node_log(data)
    assert ask(peer, 'hi\x01\x02 robot\x7f\x1b[31m') is not None
    with sqlite3.connect(data / 'sessions.sqlite3') as db:
        stored = [r[0] for r in db.execute("SELECT content FROM messages WHERE role = 'user'")]
    assert 'hi robot[31m' in stored and 'hello \ufffd\ufffd robot' in stored
    assert proc.poll() is None


def test_session_ids_with_path_characters_stay_in_the_database(node):
    peer, data, proc = node
    before = set(os.listdir(data))
    for user in ('../../etc/passwd', '\x01\x02'):  # the second is empty once cleaned: ignored
        peer.publish('/chat_node/session', user)
    time.sleep(0.5)
    assert ask(peer, 'Who am I?') is not None
    with sqlite3.connect(data / 'sessions.sqlite3') as db:
        sessions = [r[0] for r in db.execute('SELECT id FROM sessions')]
    assert '../../etc/passwd_0' in sessions
    assert set(os.listdir(data)) == before and not (data.parent.parent / 'etc').exists()
    assert 'ignored a session switch' in node_log(data)
    peer.publish('/chat_node/session', 'default')
    time.sleep(0.3)
    assert proc.poll() is None


def test_a_flood_of_utterances_gets_one_answer_each_and_nothing_is_lost(node):
    peer, data, proc = node
    peer.take('/robot_reply')
    sent, start = 2000, time.monotonic()
    for i in range(sent):
        peer.publish('/user_utterance', f'flood {i}')
    rate = sent / (time.monotonic() - start)
    replies = replies_until_quiet(peer, sent)
    time.sleep(1.0)
    replies += peer.take('/robot_reply')  # nothing more may come: exactly one answer each
    busy = replies.count(packaged_persona().line('busy'))
    assert len(replies) == sent, f'{sent} sent at {rate:.0f}/s, {len(replies)} answered'
    assert busy >= sent - 50 and proc.poll() is None
    log = node_log(data)
    assert 'answered busy to' in log and log.count('answered busy to') < sent / 10  # rate-limited
    assert ask(peer, 'Are you still there?') not in (None, packaged_persona().line('busy'))


def test_kill_9_mid_reply_then_restart_keeps_the_history_and_the_index(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    docs = tmp_path / 'docs'
    docs.mkdir()
    (docs / 'pet.txt').write_text('라이언의 강아지 이름은 초코입니다. 초코는 갈색 푸들이에요.',
                                  encoding='utf-8')
    long = ['-p', f'rag.sources={docs}']  # 40-token replies still take 100s of ms: room to kill
    peer = Peer(KILL_DOMAIN)
    proc = start_node(data, *long, domain=KILL_DOMAIN)
    try:
        wait_ready(peer, data, proc)
        first = ask(peer, 'Hello! My name is Lion.', timeout=180)
        assert first
        for name in OUT:
            peer.take(name)
        peer.publish('/user_utterance', 'Please count from one to two hundred, one per line.')
        deadline = time.monotonic() + 60
        while not peer.take('/robot_reply_stream'):
            assert time.monotonic() < deadline, 'the second reply never started'
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)  # mid-reply: tokens are streaming
        proc.wait(timeout=10)
        assert not peer.take('/robot_reply'), 'the reply finished before the kill'
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(data / 'sessions.sqlite3') as db:
        assert db.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
        rows = db.execute('SELECT role, content, interrupted FROM messages ORDER BY id').fetchall()
    assert rows[0] == ('user', 'Hello! My name is Lion.', 0)
    assert rows[1][0] == 'assistant' and rows[1][1].strip() == first
    assert rows[2][:2] == ('user', 'Please count from one to two hundred, one per line.')
    assert len(rows) == 3  # the cut-off reply is absent

    proc = start_node(data, *long, domain=KILL_DOMAIN)
    try:
        wait_ready(peer, data, proc, starts=2)
        time.sleep(1.0)  # let the new node's endpoints match too (the old ones linger)
        with sqlite3.connect(data / 'sessions.sqlite3') as db:
            marked = db.execute('SELECT interrupted FROM messages WHERE id = 3').fetchone()[0]
        assert marked == 1  # recovered at start-up: kept, marked, out of the prompt
        peer.take('/robot_reply_sources')
        assert ask(peer, '라이언의 강아지 이름이 뭐야?')
        sources = peer.take('/robot_reply_sources')
        assert sources and 'pet.txt' in sources[-1]  # the knowledge index opens and answers
        assert 'cut off by an earlier crash' in node_log(data)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _start_fails(tmp_path, *params, env=None):
    data = tmp_path / 'data'
    run_env = dict(os.environ, KIDSCARE_DATA_DIR=str(data), **(env or {}))
    done = subprocess.run([str(BIN / 'kidscare-llm'), 'node', '--transport', 'dds', *params],
                          env=run_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert 'Traceback' not in done.stderr, done.stderr[-2000:]
    return done.stderr.strip().splitlines()[-1]


def test_bad_start_up_configuration_exits_with_one_line_naming_the_fix(tmp_path):
    assert 'llm.top_p' in _start_fails(tmp_path, '-p', 'llm.top_p=3')
    assert 'chat.queue_size' in _start_fails(tmp_path, '-p', 'chat.queue_size=0')
    missing = tmp_path / 'nope.gguf'
    line = _start_fails(tmp_path, '-p', f'model.path={missing}')
    assert str(missing) in line and 'not found' in line
    corrupt = tmp_path / 'corrupt.gguf'
    corrupt.write_bytes(b'<html>404 Not Found</html>')
    assert 'not a GGUF model' in _start_fails(tmp_path, '-p', f'model.path={corrupt}')
    persona = tmp_path / 'persona'
    persona.mkdir()
    line = _start_fails(tmp_path, '-p', f'persona.dir={persona}')
    assert 'base.txt' in line
    (persona / 'base.txt').write_bytes(b'\xff\xfe\x00broken')
    (persona / 'few_shot.txt').write_text('', encoding='utf-8')
    (persona / 'informations.txt').write_text('', encoding='utf-8')
    assert 'base.txt' in _start_fails(tmp_path, '-p', f'persona.dir={persona}')
    blocker = tmp_path / 'a-file'
    blocker.write_text('not a folder')
    line = _start_fails(tmp_path, '-p', f'data_dir={blocker / "data"}')
    assert 'data dir' in line and 'writable' in line
