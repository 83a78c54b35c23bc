"""A child's words stay on the robot: no connection or DNS lookup leaves loopback by default.

The CLI and the node run in child processes under a Python audit hook that records every
socket connect/sendto to, and every name lookup of, anything but a loopback address. The
console reaches exactly its configured push target (console.push_url) and nothing else.
"""

import json
import os
from pathlib import Path
import re
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import BIN

pytestmark = pytest.mark.slow

AUDIT = textwrap.dedent('''
    import ipaddress, json, os, sys

    OUT = os.environ['AUDIT_OUT']

    def local(host):
        if host is None or host in ('', 'localhost', 'ip6-localhost'):
            return True
        if isinstance(host, bytes):
            host = host.decode(errors='replace')
        try:
            return ipaddress.ip_address(str(host).split('%')[0]).is_loopback
        except ValueError:
            return False

    def hook(event, args):
        host = None
        if event in ('socket.connect', 'socket.sendto', 'socket.sendmsg'):
            address = args[1] if len(args) > 1 else None
            if not isinstance(address, tuple):  # AF_UNIX path, or nothing: local
                return
            host = address[0]
        elif event in ('socket.getaddrinfo', 'socket.gethostbyname', 'socket.gethostbyname_ex',
                       'socket.gethostbyaddr', 'socket.getnameinfo'):
            host = args[0][0] if isinstance(args[0], tuple) else args[0]
        else:
            return
        if not local(host):
            with open(OUT, 'a') as out:
                out.write(json.dumps({'event': event, 'host': str(host)}) + '\\n')

    sys.addaudithook(hook)
    sys.argv = sys.argv[1:]
    import runpy
    runpy.run_module(sys.argv[0], run_name='__main__')
''')


def audited(tmp_path: Path, module: str, *args: str, **popen):
    """Return (argv, env) that run `python -m module args` under the audit hook."""
    script = tmp_path / 'audited.py'
    script.write_text(AUDIT)
    env = dict(os.environ, AUDIT_OUT=str(tmp_path / 'violations.jsonl'),
               KIDSCARE_DATA_DIR=str(tmp_path / 'data'), PYTHONUNBUFFERED='1')
    return [sys.executable, str(script), module, *args], env


def violations(tmp_path: Path):
    path = tmp_path / 'violations.jsonl'
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_hook_sees_a_connection_that_leaves_the_robot(tmp_path):
    argv, env = audited(tmp_path, 'http.client')  # any module: we only need the hook running
    probe = textwrap.dedent('''
        import socket
        try:
            socket.create_connection(('example.org', 80), 0.2)
        except OSError:
            pass
    ''')
    (tmp_path / 'probe.py').write_text(probe)
    subprocess.run([argv[0], argv[1], 'probe'], env=dict(env, PYTHONPATH=str(tmp_path)),
                   check=True, timeout=60)
    assert any(v['host'] == 'example.org' for v in violations(tmp_path))


def test_ingest_conversation_and_reset_stay_on_loopback(tmp_path):
    docs = tmp_path / 'docs'
    docs.mkdir()
    (docs / 'family.md').write_text('# 가족\n라이언의 엄마는 간호사예요.\n', encoding='utf-8')
    argv, env = audited(tmp_path, 'kidscare_llm.cli', 'ingest', str(docs))
    subprocess.run(argv, env=env, check=True, timeout=300, capture_output=True)
    argv, env = audited(tmp_path, 'kidscare_llm.cli', 'chat', '-p', 'llm.max_tokens=24',
                        '-m', '라이언 엄마는 무슨 일을 해?', '-m', '/reset', '-m', 'Hello!')
    done = subprocess.run(argv, env=env, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '초기화 됨' in done.stdout and 'family.md' in done.stdout
    assert violations(tmp_path) == []


def test_the_node_converses_and_resets_on_loopback_only(tmp_path):
    argv, env = audited(tmp_path, 'kidscare_llm.cli', 'node', '--transport', 'dds',
                        '-p', 'llm.max_tokens=24')
    with (tmp_path / 'node.log').open('wb') as log:
        node = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        say = subprocess.run([str(BIN / 'kidscare-llm'), 'say', '--transport', 'dds', '--reset',
                              '--timeout', '240', '안녕! 나는 라이언이야.'],
                             capture_output=True, text=True, timeout=300)
        assert say.returncode == 0, say.stderr[-2000:] + (tmp_path / 'node.log').read_text()
        assert say.stdout.strip() and 'new session' in say.stderr
        time.sleep(0.5)
        assert node.poll() is None
    finally:
        node.terminate()
        node.wait(timeout=20)
    assert violations(tmp_path) == []


PUSH_TARGET = '10.255.255.1'  # private (a home network), and unroutable here


def test_the_console_reaches_its_configured_push_target_and_nothing_else(tmp_path):
    """Pages, commands and an alert over DDS on loopback; the push goes to push_url only."""
    import httpx
    from ros2_wire import Peer

    from conftest import free_port, wait_for_port

    port = free_port()
    argv, env = audited(tmp_path, 'kidscare_llm.cli', 'console', '--transport', 'dds',
                        '-p', f'console.port={port}', '-p', 'console.push_attempts=1',
                        '-p', f'console.push_url=http://{PUSH_TARGET}:9/tori')
    with (tmp_path / 'console.log').open('wb') as log:
        console = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    peer = Peer(int(os.environ['ROS_DOMAIN_ID']))
    failures = tmp_path / 'data' / 'console' / 'push.jsonl'
    try:
        wait_for_port(port, console, timeout=60)
        for path in ('/', '/children', '/knowledge', '/persona', '/rules', '/data'):
            assert httpx.get(f'http://127.0.0.1:{port}{path}', timeout=30).status_code == 200
        assert peer.wait_matched(writes=['/caregiver_alert'], timeout=60)
        peer.publish('/caregiver_alert', json.dumps(
            {'time': '2026-01-02T21:03:00+0900', 'user': 'mina', 'session': 's',
             'category': 'crisis', 'utterance': '비밀이야'}, ensure_ascii=False))
        deadline = time.monotonic() + 60
        while not failures.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert failures.exists(), (tmp_path / 'console.log').read_text()[-2000:]
        assert console.poll() is None
    finally:
        console.terminate()
        console.wait(timeout=20)
    assert json.loads(failures.read_text().splitlines()[0])['final']
    seen = violations(tmp_path)
    assert seen and {v['host'] for v in seen} == {PUSH_TARGET}, seen


def test_discovery_range_follows_ros_settings():
    from kidscare_llm.transport.base import TransportError
    from kidscare_llm.transport.dds import discovery_config

    local = discovery_config({})
    assert '<AllowMulticast>false</AllowMulticast>' in local
    assert '<Peer address="localhost"/>' in local
    assert discovery_config({'ROS_LOCALHOST_ONLY': '1'}) == local
    assert discovery_config({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'subnet'}) == ''
    assert discovery_config({'ROS_LOCALHOST_ONLY': '0'}) == ''
    assert discovery_config({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SYSTEM_DEFAULT',
                             'CYCLONEDDS_URI': 'file:///x.xml'}) == 'file:///x.xml'
    with_uri = discovery_config({'CYCLONEDDS_URI': 'file:///x.xml'})
    assert with_uri == local + ',file:///x.xml'
    peers = discovery_config({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET',
                              'ROS_STATIC_PEERS': 'robot-arm.local;10.0.0.7"'})
    assert '<Peer address="robot-arm.local"/>' in peers and 'localhost' not in peers
    assert '<Peer address=\'10.0.0.7"\'/>' in peers  # quoted, not injected
    off = discovery_config({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'OFF', 'ROS_STATIC_PEERS': 'x'})
    assert '<Tag>ros_discovery_off_' in off and '<Peer' not in off
    with pytest.raises(TransportError, match='ROS_AUTOMATIC_DISCOVERY_RANGE=LAN'):
        discovery_config({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'lan'})


PLAIN_DDS = textwrap.dedent('''
    import time
    from kidscare_llm.transport import MSG_STRING
    from kidscare_llm.transport.dds import DdsTransport
    a, b = DdsTransport('a', domain_id=149), DdsTransport('b', domain_id=149)
    got = []
    b.subscribe('/privacy', MSG_STRING, got.append)
    publish = a.publisher('/privacy', MSG_STRING)
    assert a.wait_for_subscribers('/privacy', MSG_STRING, 20)
    publish('hello')
    time.sleep(0.5)
    assert got == ['hello'], got
    a.shutdown()
    b.shutdown()
''')


def test_plain_dds_by_default_discovers_on_this_computer_only(tmp_path):
    """No ROS settings: no multicast, and discovery is sent to this machine's own addresses."""
    trace = tmp_path / 'cyclone.log'
    (tmp_path / 'trace.xml').write_text(
        '<CycloneDDS><Domain><Tracing><Category>config,discovery</Category>'
        f'<OutputFile>{trace}</OutputFile></Tracing></Domain></CycloneDDS>')
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('ROS_') and k != 'CYCLONEDDS_URI'}
    env['CYCLONEDDS_URI'] = f'file://{tmp_path / "trace.xml"}'  # tracing only: no discovery
    run = subprocess.run([sys.executable, '-c', PLAIN_DDS], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    log = trace.read_text()
    assert 'Domain/General/AllowMulticast/#text: false' in log
    assert 'Domain/Discovery/Peers/Peer[@Address]: localhost' in log
    own = set(re.findall(r'udp/([0-9.]+)', re.search(r'interfaces: (.*)', log).group(1)))
    sent_to = set(re.findall(r'add_peer_address: add udp/([0-9.]+):', log))
    assert sent_to and sent_to <= own | {'127.0.0.1'}, (sent_to, own)
