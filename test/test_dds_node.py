"""The chat node as a process, over real DDS on loopback, driven by an independent peer."""

import json
import os
import sqlite3
import subprocess
import time

import pytest

from conftest import BIN
from kidscare_llm.core.chat.persona import packaged_persona
from kidscare_llm.transport.dds import DdsTransport
from ros2_wire import Peer

pytestmark = pytest.mark.slow
FAST = ['-p', 'llm.temperature=0', '-p', 'llm.max_tokens=40', '-p', 'model.download=false',
        '-p', 'chat.max_utterance_chars=300']
OUT = ('/robot_reply_partial', '/robot_reply_stream')


@pytest.fixture(scope='module')
def node(tmp_path_factory):
    data = tmp_path_factory.mktemp('node') / 'data'
    log = data.parent / 'node.log'
    docs = data.parent / 'docs'
    docs.mkdir()
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(data), PYTHONUNBUFFERED='1')
    with log.open('wb') as out:
        proc = subprocess.Popen([str(BIN / 'kidscare-llm'), 'node', '--transport', 'dds', *FAST,
                                 '-p', f'rag.sources={docs}'],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    peer = Peer(int(os.environ['ROS_DOMAIN_ID']))
    ok = peer.wait_matched(writes=['/user_utterance'],
                           reads=['/robot_reply', '/robot_reply_sources', *OUT])
    try:
        assert ok, f'chat node not discovered; log: {log.read_text()[-2000:]}'
        yield peer, data, proc, log
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def ask(peer, text, timeout=60.0):
    for name in OUT:
        peer.take(name)
    peer.publish('/user_utterance', text)
    return peer.collect_until('/robot_reply', OUT, timeout)


def db_messages(data, session):
    with sqlite3.connect(data / 'sessions.sqlite3') as db:
        return db.execute('SELECT role, content FROM messages WHERE session_id = ? ORDER BY id',
                          (session,)).fetchall()


def test_utterance_gets_partials_stream_and_full_reply(node):
    peer, data, _, _ = node
    reply, got = ask(peer, 'Hello robot! My name is Lion.')
    assert reply
    assert got['/robot_reply_partial'], 'no sentence chunks before the full reply'
    assert ' '.join(got['/robot_reply_partial']).split() == reply.split()
    assert ''.join(got['/robot_reply_stream']).strip() == reply
    stored = db_messages(data, 'default_0')[-2:]
    assert stored[0] == ('user', 'Hello robot! My name is Lion.')
    assert stored[1][0] == 'assistant' and stored[1][1].strip() == reply


def test_reset_service_and_session_topic(node):
    peer, data, _, _ = node
    client = DdsTransport('test_client')
    try:
        ok, message = client.call_trigger('/chat_node/reset_session', timeout=30)
        assert ok and 'default_1' in message
        reply, _ = ask(peer, 'What is my name?')
        assert reply and db_messages(data, 'default_1')[0] == ('user', 'What is my name?')
        peer.wait_matched(writes=['/chat_node/session'])
        peer.publish('/chat_node/session', 'mina')
        time.sleep(0.3)
        reply, _ = ask(peer, 'I am Mina.')
        assert reply and db_messages(data, 'mina_0')[0] == ('user', 'I am Mina.')
        peer.publish('/chat_node/session', 'default')
        time.sleep(0.3)
    finally:
        client.shutdown()


def test_reindex_service_and_sources_topic(node):
    peer, data, _, _ = node
    docs = data.parent / 'docs'
    (docs / 'garden.txt').write_text('라이언네 마당에는 해바라기와 방울토마토가 자란다.',
                                     encoding='utf-8')
    client = DdsTransport('test_reindex')
    try:
        ok, message = client.call_trigger('/chat_node/reindex', timeout=60)
    finally:
        client.shutdown()
    assert ok and '1 added' in message
    peer.take('/robot_reply_sources')
    reply, _ = ask(peer, '마당에 무엇이 자라?')
    sources = json.loads(peer.take('/robot_reply_sources')[-1])
    passages = [s for s in sources if s['source'] != 'memory']  # memory comes first
    assert reply and passages[0]['source'] == str(docs / 'garden.txt')


def test_memory_citations_on_the_sources_topic(node):
    peer, data, _, _ = node
    ask(peer, '우리 강아지 이름은 보리야')
    peer.take('/robot_reply_sources')
    reply, _ = ask(peer, '내 강아지 이름 기억나?')
    sources = json.loads(peer.take('/robot_reply_sources')[-1])
    remembered = [s for s in sources if s['source'] == 'memory']
    assert reply and remembered and '보리' in remembered[0]['text']
    assert remembered[0]['kind'] == 'pet' and remembered[0]['user'] == 'default'
    assert list((data / 'memory').glob('default-*.sqlite3'))


def test_bad_input_never_kills_the_node(node):
    peer, data, proc, log = node
    peer.publish('/user_utterance', '   ')  # ignored, no reply
    reply, _ = ask(peer, 'x' * 301)
    assert reply == packaged_persona().line('too_long')
    reply, _ = ask(peer, b'broken \xff\xfe utf-8')
    assert reply and proc.poll() is None
    stored = [c for r, c in db_messages(data, 'default_1') if r == 'user']
    assert 'broken \ufffd\ufffd utf-8' in stored
    assert 'invalid UTF-8' in log.read_text()
    assert 'ignored an empty utterance' in log.read_text()
    reply, _ = ask(peer, 'Are you still there?')
    assert reply and proc.poll() is None


@pytest.mark.parametrize('override, message', [
    ('model.path=/nonexistent/model.gguf', 'model file not found: /nonexistent/model.gguf'),
    ('persona.dir=/nonexistent/persona', 'persona folder not found'),
    ('model.bogus=1', "unknown parameter 'model.bogus'"),
])
def test_startup_errors_exit_with_one_clear_line(override, message, tmp_path):
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(tmp_path))
    proc = subprocess.run([str(BIN / 'kidscare-llm'), 'node', '--transport', 'dds', '-p',
                           override], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert message in proc.stderr and 'Traceback' not in proc.stderr


def test_corrupt_gguf_is_refused(tmp_path):
    bad = tmp_path / 'half.gguf'
    bad.write_bytes(b'GGUF' + b'\x00' * 64)
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(tmp_path))
    proc = subprocess.run([str(BIN / 'chat_node'), '--ros-args', '-p', f'model.path:={bad}'],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert 'llama.cpp cannot load' in proc.stderr and 'Traceback' not in proc.stderr


def test_sigterm_stops_the_node_cleanly(node):
    """SIGTERM (systemd, docker stop) closes the node as Ctrl-C does: exit 0, no traceback.

    Last in this module: it stops the module's node.
    """
    peer, data, proc, log = node
    assert ask(peer, 'Hello!')[0]  # alive and answering first
    proc.terminate()
    assert proc.wait(timeout=60) == 0
    assert 'Traceback' not in log.read_text(errors='replace')
