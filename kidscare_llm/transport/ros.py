"""rclpy transport: a real ROS 2 node (Humble or Jazzy), parameters declared with descriptions."""

import array
import json
import logging
from pathlib import Path
import sys
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from kidscare_llm.core import settings
from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.voice.audio import AudioChunk, chunk_from_stamped, PA_FLOAT32
from kidscare_llm.transport.base import (DEPTH, KEEP_ALL, MSG_AUDIO, MSG_BOOL, MSG_STRING,
                                         ParamHandler, Transport, TransportError, TriggerHandler,
                                         wait_until)


def _ros_value(node: str, name: str, value: Any) -> str:
    """Render a -p override so ROS parses it as the parameter's type ('0' as 0.0 if float)."""
    table = {p.name: p for p in settings.PARAMS.get(node, ())}
    if name not in table:
        return str(value)
    value = settings.coerce(table[name], value)
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _descriptor(p):
    """Return the ROS ParameterDescriptor of one table entry: type, range, read_only."""
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)

    types = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    descriptor = ParameterDescriptor(description=p.description, type=types[p.kind],
                                     read_only=not p.live)
    if p.choices:
        descriptor.additional_constraints = 'one of: ' + ', '.join(p.choices)
    if p.kind is float and p.low is not None and p.high is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(p.low), to_value=float(p.high), step=0.0)]
    elif p.kind is int and p.low is not None and p.high is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(p.low), to_value=int(p.high),
                                                 step=1)]
    elif p.low is not None or p.high is not None:
        descriptor.additional_constraints = (
            f'from {p.low if p.low is not None else "-inf"} '
            f'to {p.high if p.high is not None else "inf"}')
    return descriptor


class _RosLogHandler(logging.Handler):
    """Send the core's Python log records to the node's ROS logger (console, /rosout).

    Once Ctrl-C or SIGTERM has shut the context down, /rosout is gone and rcl would add
    "Failed to publish log message to rosout" to each record logged by a thread still
    finishing: those records go to stderr instead, in the runner's format.
    """

    def __init__(self, ros_logger, context_ok: Callable[[], bool]):
        super().__init__()
        self._ros = ros_logger
        self._context_ok = context_ok

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if not self._context_ok():
            sys.stderr.write(f'[{record.levelname}] [{record.name}]: {text}\n')
            return
        if record.levelno >= logging.ERROR:
            self._ros.error(text)
        elif record.levelno >= logging.WARNING:
            self._ros.warning(text)
        elif record.levelno >= logging.INFO:
            self._ros.info(text)
        else:
            self._ros.debug(text)


def _message_class(msg_type: str):
    """Return the rclpy message class of one of the transport's message types."""
    if msg_type == MSG_STRING:
        from std_msgs.msg import String
        return String
    if msg_type == MSG_BOOL:
        from std_msgs.msg import Bool
        return Bool
    if msg_type == MSG_AUDIO:
        try:
            from audio_common_msgs.msg import AudioStamped
        except ImportError:
            raise TransportError(
                'audio topics need audio_common_msgs, which this ROS 2 does not have: '
                'build it (github.com/mgonzs13/audio_common) or run the node with '
                '--transport dds, which speaks AudioStamped by itself') from None
        return AudioStamped
    raise TransportError(f'the rclpy transport does not know {msg_type}')


def _qos(depth: Optional[int]):
    """Return the QoS profile of a depth (KEEP_ALL or keep-last depth)."""
    from rclpy.qos import HistoryPolicy, QoSProfile

    if depth is KEEP_ALL:
        return QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=DEPTH)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth)


class _Spinner:
    """A MultiThreadedExecutor spinning one node in a background thread, stopped in order."""

    def __init__(self, node, stopped: threading.Event):
        from rclpy.executors import MultiThreadedExecutor

        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(node)
        self.stopped = stopped
        self.thread = threading.Thread(target=self._spin, name='rclpy-executor', daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutdown while spinning (Ctrl-C, context shut down)
            pass
        finally:
            self.stopped.set()

    def stop(self, timeout: float, log: logging.Logger) -> None:
        """Wake spin() out of its wait, join its thread, let running callbacks finish."""
        try:
            self.executor.shutdown(timeout_sec=timeout)
        except Exception:  # already shut down with the context
            pass
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning('the rclpy executor thread did not stop within %.0f s', timeout)
        tasks = list(getattr(self.executor, '_futures', ()) or ())
        wait_until(lambda: not any(getattr(t, 'executing', bool)() for t in tasks), timeout)


def _close_context(rclpy) -> None:
    """Shut the default context down (if still up) and uninstall rclpy's signal handlers.

    Both even after SIGINT/SIGTERM shut the context down: rclpy.shutdown() would raise then,
    and skipping it leaves rclpy's signal-handling thread to be torn down at process exit.
    """
    try:
        rclpy.try_shutdown()
    except Exception:
        pass
    try:
        from rclpy.signals import uninstall_signal_handlers
        uninstall_signal_handlers()  # joins rclpy's signal thread; harmless when done already
    except Exception:
        pass


class RclpyTransport(Transport):
    """One rclpy Node whose executor spins in a background thread from the start."""

    def __init__(self, node_name: str, params_file: Optional[Path] = None,
                 overrides: Optional[Mapping[str, Any]] = None,
                 remaps: Optional[Mapping[str, str]] = None, args: Optional[Sequence[str]] = None):
        super().__init__(node_name)
        import rclpy
        from rclpy.node import Node

        self._rclpy = rclpy
        ros_args: List[str] = ['--ros-args']
        if params_file:
            ros_args += ['--params-file', str(params_file)]
        for name, value in (overrides or {}).items():
            ros_args += ['-p', f'{name}:={_ros_value(node_name, name, value)}']
        for src, dst in (remaps or {}).items():
            ros_args += ['-r', f'{src}:={dst}']
        self._owns_context = not rclpy.ok()
        self._stop = threading.Event()
        self._closed = False
        self._param_handler: Optional[ParamHandler] = None
        self._table: Dict[str, settings.Param] = {}
        self._table_node = node_name
        self.node = self._spinner = self._log_handler = None
        if self._owns_context:
            try:
                rclpy.init(args=['kidscare_llm'] + list(args or [])[1:] +
                           (ros_args if len(ros_args) > 1 else []))
            except Exception as exc:  # e.g. a malformed --ros-args section
                _close_context(rclpy)
                raise TransportError(f'rclpy could not start: {exc}') from None
        try:
            self.node = Node(node_name)
            root = logging.getLogger('kidscare_llm')
            self._log_handler = _RosLogHandler(self.node.get_logger(), rclpy.ok)
            root.addHandler(self._log_handler)
            root.setLevel(logging.INFO)
            root.propagate = False
            self._spinner = _Spinner(self.node, self._stop)
        except Exception as exc:
            self.shutdown()
            raise TransportError(f'rclpy node {node_name} could not start: {exc}') from None

    def _make(self, msg_type: str) -> Callable[[Any], Any]:
        """Return value -> message for a topic type."""
        cls = _message_class(msg_type)
        if msg_type != MSG_AUDIO:
            return lambda value: cls(data=value)

        def audio(chunk: AudioChunk):
            msg = cls()
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.audio.audio_data.float32_data = array.array('f', chunk.samples.tobytes())
            msg.audio.info.format = PA_FLOAT32
            msg.audio.info.channels = 1
            msg.audio.info.rate = int(chunk.rate)
            msg.audio.info.chunk = len(chunk.samples)
            return msg
        return audio

    def parameters(self, node: str) -> Dict[str, Any]:
        """Declare every parameter with a descriptor (description, range, read_only)."""
        values = {}
        self._table = {p.name: p for p in settings.params_for(node)}
        self._table_node = node
        for p in self._table.values():
            # typed by coerce() below: 1 in a YAML file is fine for a float parameter
            try:
                declared = self.node.declare_parameter(p.name, p.default, _descriptor(p))
            except Exception as exc:  # a value of the wrong type from a file or --ros-args
                raise ConfigError(f'parameter {p.name}: {exc}') from None
            values[p.name] = settings.coerce(p, declared.value)
            settings.check_limits(p.name, values[p.name], node)
        self.node.add_on_set_parameters_callback(self._on_set)
        return values

    def on_parameter_change(self, handler: ParamHandler) -> None:
        """Apply `ros2 param set` on live parameters through handler({name: value})."""
        self._param_handler = handler

    def _on_set(self, parameters):
        """Validate a parameter change and apply it (live ones only), or refuse with a reason."""
        from rcl_interfaces.msg import SetParametersResult

        changes = {}
        try:
            for param in parameters:
                spec = self._table.get(param.name)
                if spec is None:  # use_sim_time and other ROS-owned parameters
                    continue
                if not spec.live:
                    raise ConfigError(f'{param.name} is read at start-up: change it in the '
                                      'params file and restart the node')
                value = settings.coerce(spec, param.value)
                settings.check_limits(spec.name, value, self._table_node)
                changes[spec.name] = value
            if changes:
                if self._param_handler is None:
                    raise ConfigError('this node applies no parameter at run time')
                self._param_handler(changes)
        except Exception as exc:  # refused: the old value stays, the caller reads why
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def publisher(self, topic: str, msg_type: str,
                  depth: Optional[int] = DEPTH) -> Callable[[Any], None]:
        """Return a function that publishes one value."""
        make = self._make(msg_type)
        pub = self.node.create_publisher(_message_class(msg_type), topic, _qos(depth))
        return lambda value: pub.publish(make(value))

    def subscribe(self, topic: str, msg_type: str, callback: Callable[[Any], None],
                  depth: Optional[int] = DEPTH) -> None:
        """Call callback(value) for each message (AudioStamped: a core.audio.AudioChunk)."""
        value_of = chunk_from_stamped if msg_type == MSG_AUDIO else (lambda msg: msg.data)
        cb = self.safe(f'subscription {topic}', lambda msg: callback(value_of(msg)))
        self.node.create_subscription(_message_class(msg_type), topic, cb, _qos(depth))

    def serve_trigger(self, service: str, handler: TriggerHandler) -> None:
        """Serve std_srvs/Trigger."""
        from std_srvs.srv import Trigger

        run = self.safe(f'service {service}', handler)

        def on_request(_request, response):
            result = run()
            response.success, response.message = result if result is not None else \
                (False, 'internal error, see log')
            return response
        self.node.create_service(Trigger, service, on_request)

    def call_trigger(self, service: str, timeout: float = 10.0) -> Tuple[bool, str]:
        """Call std_srvs/Trigger; the background executor completes the future."""
        from std_srvs.srv import Trigger

        client = self.node.create_client(Trigger, service)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TransportError(f'service {service} not available within {timeout:.0f} s')
        future = client.call_async(Trigger.Request())
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise TransportError(f'service {service} did not answer within {timeout:.0f} s')
        result = future.result()
        return bool(result.success), result.message

    def wait_for_subscribers(self, topic: str, msg_type: str, timeout: float) -> bool:
        """Wait until topic has a subscriber."""
        return wait_until(lambda: self.node.count_subscribers(topic) > 0, timeout)

    def wait_for_publishers(self, topic: str, msg_type: str, timeout: float) -> bool:
        """Wait until topic has a publisher."""
        return wait_until(lambda: self.node.count_publishers(topic) > 0, timeout)

    def spin(self) -> None:
        """Block until shutdown() or Ctrl-C; the executor thread delivers the callbacks."""
        try:
            while not self._stop.wait(0.5) and self._rclpy.ok():
                pass
        except KeyboardInterrupt:
            pass

    def stopping(self) -> bool:
        """Return True once rclpy was shut down (its SIGINT/SIGTERM handlers do that)."""
        return self._stop.is_set() or not self._rclpy.ok()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop spinning, join the executor thread, destroy the node, shut rclpy down.

        In this order, and all of it even after Ctrl-C or SIGTERM shut the context down: a
        thread still in rclpy's native code while the interpreter exits aborts the process
        ("terminate called without an active exception", exit 134) instead of exiting with
        the code the runner chose.
        """
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._spinner is not None:
            self._spinner.stop(timeout, self.log)
        if self._log_handler is not None:
            logging.getLogger('kidscare_llm').removeHandler(self._log_handler)
        if self.node is not None:
            try:
                self.node.destroy_node()
            except Exception:  # the context went first (a signal): nothing left to free
                pass
        if self._owns_context:
            _close_context(self._rclpy)
