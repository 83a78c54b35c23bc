"""The rclpy transport's exit path, on a stand-in rclpy: the order that keeps exits clean.

The real abort ("terminate called without an active exception", exit 134) needs ROS 2
(test/test_ros_processes.py); here a fake rclpy records what happens when, so the order holds
everywhere: the executor thread has left spin() before the node is destroyed, and the context
is shut down and rclpy's signal handlers uninstalled even after a signal shut it down first.
"""

import logging
import sys
import threading
import types

import pytest

from kidscare_llm.core.errors import ModelError
from kidscare_llm.nodes import runner
from kidscare_llm.transport.base import TransportError


class FakeRclpy:
    """Just enough of rclpy for RclpyTransport: init, Node, executor, shutdown, signals."""

    def __init__(self, node_fails=False):
        self.events = []
        self.up = False
        self.node_fails = node_fails
        self.spinner = None
        fake = self

        class Node:
            def __init__(self, name):
                if fake.node_fails:
                    raise RuntimeError('invalid node name')

            def get_logger(self):
                return types.SimpleNamespace(error=print, warning=print, info=print,
                                             debug=print)

            def destroy_node(self):
                alive = fake.spinner is not None and fake.spinner.is_alive()
                fake.events.append(('destroy_node', alive))

        class MultiThreadedExecutor:
            def __init__(self, num_threads):
                self.stop = threading.Event()

            def add_node(self, node):
                pass

            def spin(self):
                fake.spinner = threading.current_thread()
                self.stop.wait()

            def shutdown(self, timeout_sec=None):
                fake.events.append(('executor.shutdown', None))
                self.stop.set()
                return True

        self.module = types.ModuleType('rclpy')
        self.module.ok = lambda: self.up
        self.module.init = lambda args=None: setattr(self, 'up', True)
        self.module.try_shutdown = lambda: (self.events.append(('try_shutdown', None)),
                                            setattr(self, 'up', False))
        self.node_module = types.ModuleType('rclpy.node')
        self.node_module.Node = Node
        self.executors = types.ModuleType('rclpy.executors')
        self.executors.MultiThreadedExecutor = MultiThreadedExecutor
        self.signals = types.ModuleType('rclpy.signals')
        self.signals.uninstall_signal_handlers = lambda: self.events.append(('uninstall', None))

    def install(self, monkeypatch):
        """Put the stand-in into sys.modules."""
        for name, module in (('rclpy', self.module), ('rclpy.node', self.node_module),
                             ('rclpy.executors', self.executors),
                             ('rclpy.signals', self.signals)):
            monkeypatch.setitem(sys.modules, name, module)
        return self


@pytest.fixture
def fake_rclpy(monkeypatch):
    """A stand-in rclpy for one test."""
    return FakeRclpy().install(monkeypatch)


def names(events):
    """Return the event names in order."""
    return [name for name, _ in events]


def test_shutdown_joins_the_executor_before_destroying_the_node(fake_rclpy):
    from kidscare_llm.transport.ros import RclpyTransport

    transport = RclpyTransport('chat_node')
    transport.shutdown()
    assert names(fake_rclpy.events) == ['executor.shutdown', 'destroy_node', 'try_shutdown',
                                        'uninstall']
    assert ('destroy_node', False) in fake_rclpy.events  # the spin thread had returned
    transport.shutdown()  # twice is harmless
    assert len(fake_rclpy.events) == 4


def test_after_a_signal_the_context_is_still_closed(fake_rclpy):
    from kidscare_llm.transport.ros import RclpyTransport

    transport = RclpyTransport('chat_node')
    fake_rclpy.up = False  # SIGTERM: rclpy's handler shut the context down
    assert transport.stopping()
    transport.shutdown()
    assert names(fake_rclpy.events)[-2:] == ['try_shutdown', 'uninstall']


def test_log_records_after_a_signal_go_to_stderr_not_to_rosout(fake_rclpy, capsys):
    from kidscare_llm.transport.ros import RclpyTransport

    transport = RclpyTransport('chat_node')
    # the logger holding the handler: importing ROS 2's launch (test_ros_processes does)
    # makes loggers created afterwards stop propagating, so not a child logger here
    log = logging.getLogger('kidscare_llm')
    log.info('while the context is up')
    captured = capsys.readouterr()
    assert 'while the context is up' in captured.out and not captured.err  # the ROS logger
    fake_rclpy.up = False  # SIGTERM: rclpy's handler shut the context down
    log.info('after the signal')
    captured = capsys.readouterr()
    assert 'after the signal' not in captured.out
    assert captured.err == '[INFO] [kidscare_llm]: after the signal\n'
    transport.shutdown()


def test_a_node_that_cannot_start_closes_the_context(monkeypatch):
    fake = FakeRclpy(node_fails=True).install(monkeypatch)
    from kidscare_llm.transport.ros import RclpyTransport

    with pytest.raises(TransportError, match='invalid node name'):
        RclpyTransport('bad name')
    assert names(fake.events) == ['try_shutdown', 'uninstall']


class FakeTransport:
    """A transport that records its shutdown."""

    def __init__(self, stopping=False):
        self.log = types.SimpleNamespace(info=lambda *a: None)
        self.closed = 0
        self.is_stopping = stopping

    def spin(self):
        pass

    def stopping(self):
        return self.is_stopping

    def shutdown(self):
        self.closed += 1


def run_with(monkeypatch, transport, factory):
    monkeypatch.setattr(runner, 'create', lambda *a, **k: transport)
    monkeypatch.setattr(runner, 'choose', lambda name: 'dds')
    return runner.run_node('chat_node', factory)


def fail(exc):
    def factory(_transport):
        raise exc
    return factory


def test_a_start_up_error_exits_1_with_the_transport_shut_down(monkeypatch, capfd):
    transport = FakeTransport()
    assert run_with(monkeypatch, transport, fail(ModelError('model file not found: x'))) == 1
    assert transport.closed == 1
    assert capfd.readouterr().err.strip() == 'chat_node: model file not found: x'


def test_stopped_while_loading_exits_130_with_the_transport_shut_down(monkeypatch):
    transport = FakeTransport(stopping=True)
    assert run_with(monkeypatch, transport, fail(RuntimeError('context invalid'))) == 130
    assert transport.closed == 1
    transport = FakeTransport()
    assert run_with(monkeypatch, transport, fail(KeyboardInterrupt())) == 130
    assert transport.closed == 1


def test_an_unexpected_start_up_error_exits_1_with_one_line(monkeypatch, capfd):
    """A broken install (llama_cpp missing) once aborted under rclpy after its traceback."""
    transport = FakeTransport()
    missing = ModuleNotFoundError('No module named llama_cpp')
    assert run_with(monkeypatch, transport, fail(missing)) == 1
    assert transport.closed == 1
    err = capfd.readouterr().err.strip()
    assert err == ('chat_node: start-up failed: ModuleNotFoundError: No module named '
                   'llama_cpp (run kidscare-llm doctor)')


def test_an_unexpected_error_while_running_still_shuts_the_transport_down(monkeypatch):
    transport = FakeTransport()
    transport.spin = lambda: 1 / 0
    with pytest.raises(ZeroDivisionError):
        run_with(monkeypatch, transport, lambda _t: types.SimpleNamespace(close=lambda: None))
    assert transport.closed == 1


def test_a_clean_stop_closes_the_node_then_the_transport(monkeypatch):
    transport, order = FakeTransport(), []
    node = types.SimpleNamespace(close=lambda: order.append('node'))
    original = transport.shutdown
    transport.shutdown = lambda: (order.append('transport'), original())
    assert run_with(monkeypatch, transport, lambda _t: node) == 0
    assert order == ['node', 'transport']
