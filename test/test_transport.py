"""The DDS transport's shutdown over real DDS: no callback after it, none into a dying process."""

import os
import subprocess
import sys
import threading
import time

import pytest

from kidscare_llm.transport import MSG_BOOL, TransportError
from kidscare_llm.transport.base import wait_until
from kidscare_llm.transport.dds import DdsTransport

DOMAIN = 231  # a domain of its own: a flood here must not reach other modules' readers
FLOOD_S = 8.0


def flood(stop: threading.Event) -> threading.Thread:
    """Publish Bool on /robot_speaking as fast as a loop can until stop is set."""
    def run():
        t = DdsTransport('flooder', domain_id=DOMAIN)
        publish = t.publisher('/robot_speaking', MSG_BOOL)
        try:
            while not stop.is_set():
                publish(True)
                time.sleep(0.001)
        finally:
            t.shutdown()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def flooding():
    stop = threading.Event()
    thread = flood(stop)
    yield
    stop.set()
    thread.join(timeout=10)


def test_no_callback_runs_after_shutdown_returns(flooding):
    t = DdsTransport('listener', domain_id=DOMAIN)
    calls = []
    t.subscribe('/robot_speaking', MSG_BOOL, lambda value: calls.append(time.monotonic()))
    assert wait_until(lambda: len(calls) > 20, 30), 'the flood never arrived'
    t.shutdown()
    after_shutdown = len(calls)
    time.sleep(1.0)
    assert len(calls) == after_shutdown, 'a listener fired after shutdown() returned'


def test_shutdown_from_inside_a_callback_returns(flooding):
    t = DdsTransport('listener', domain_id=DOMAIN)
    done = threading.Event()

    def stop_here(_value):
        t.shutdown()
        done.set()
    t.subscribe('/robot_speaking', MSG_BOOL, stop_here)
    assert done.wait(30), 'shutdown() inside a callback did not return'
    assert t.stopping()
    t.shutdown()  # from outside again: detaches the listener, does not hang


def test_shutdown_unmatches_peers_and_later_use_is_refused():
    listener = DdsTransport('listener', domain_id=DOMAIN)
    listener.subscribe('/unmatch', MSG_BOOL, lambda value: None)
    publish = listener.publisher('/unmatch_out', MSG_BOOL)
    talker = DdsTransport('talker', domain_id=DOMAIN)
    try:
        assert talker.wait_for_subscribers('/unmatch', MSG_BOOL, 30)
        listener.shutdown()
        assert wait_until(lambda: not talker.wait_for_subscribers('/unmatch', MSG_BOOL, 0), 10), \
            'a shut-down transport still matches its peers'
        publish(True)  # dropped, not an error: a node may still be finishing a reply
        with pytest.raises(TransportError, match='shut down'):
            listener.call_trigger('/nobody/cancel', timeout=1)
        with pytest.raises(TransportError, match='shut down'):
            listener.wait_for_subscribers('/unmatch_out', MSG_BOOL, 0)
    finally:
        talker.shutdown()


EXIT_WHILE_FLOODED = '''
import time
from kidscare_llm.nodes.runner import run_node
from kidscare_llm.transport import MSG_BOOL


class Listener:
    def __init__(self, transport):
        self.seen = 0
        transport.subscribe('/robot_speaking', MSG_BOOL, self.on_value)

    def on_value(self, value):
        self.seen += 1

    def close(self):
        pass


def body(node, transport):
    deadline = time.monotonic() + 30
    while node.seen < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    return 0 if node.seen >= 20 else 4


raise SystemExit(run_node('listener', Listener, 'dds', body=body))
'''


def test_node_process_exits_cleanly_while_messages_arrive(flooding):
    """A node that ends while a topic floods it exits 0 (a CI run once saw SIGSEGV here)."""
    for _ in range(5):
        proc = subprocess.run([sys.executable, '-c', EXIT_WHILE_FLOODED], capture_output=True,
                              text=True, timeout=120,
                              env=dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN)))
        assert proc.returncode == 0, proc.stderr[-3000:]
