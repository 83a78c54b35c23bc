"""The transport interface: publishers, subscriptions, Trigger services, parameters, spin."""

from abc import ABC, abstractmethod
import logging
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from kidscare_llm.core.errors import KidscareError

MSG_STRING = 'std_msgs/msg/String'
MSG_BOOL = 'std_msgs/msg/Bool'
# Audio topics (values: core.audio.AudioChunk), as the ROS 2 audio_common packages publish them
MSG_AUDIO = 'audio_common_msgs/msg/AudioStamped'
SRV_TRIGGER = 'std_srvs/srv/Trigger'
# History depth of a topic, as ROS 2's default profile; KEEP_ALL (None) never overwrites an
# unread message: a reader that falls behind slows the writer down instead of losing data.
DEPTH = 10
KEEP_ALL = None
# A writer's history deep enough for any burst of answers: unlike KEEP_ALL it never blocks the
# writing thread (a blocked write can stall the DDS receive thread that must process the very
# acknowledgements it waits for), yet a reader keeping up loses nothing.
DEEP = 1000

# A Trigger handler takes nothing and returns (success, message).
TriggerHandler = Callable[[], Tuple[bool, str]]
ParamHandler = Callable[[Dict[str, Any]], None]


class TransportError(KidscareError):
    """The transport cannot be created or used (missing library, bad name, no peer)."""


def resolve_name(name: str, node_name: str, namespace: str = '/',
                 remaps: Optional[Mapping[str, str]] = None) -> str:
    """Resolve a ROS name to an absolute one: '~/x' is private, 'x' is in the namespace."""
    remaps = remaps or {}
    if name in remaps:
        name = remaps[name]
    ns = '/' + namespace.strip('/')
    if name.startswith('~'):
        full = f'{ns.rstrip("/")}/{node_name}/{name[1:].lstrip("/")}'
    elif name.startswith('/'):
        full = name
    else:
        full = f'{ns.rstrip("/")}/{name}'
    return remaps.get(full, full).rstrip('/') or '/'


def wait_until(condition: Callable[[], Any], timeout: float) -> bool:
    """Poll condition every 50 ms until it holds (True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Transport(ABC):
    """What a node needs from ROS 2 or DDS, and nothing more."""

    def __init__(self, node_name: str):
        self.node_name = node_name
        self.log = logging.getLogger(f'kidscare_llm.{node_name}')

    @abstractmethod
    def parameters(self, node: str) -> Dict[str, Any]:
        """Declare the node's parameters as core/settings.py lists them; return their values."""

    def on_parameter_change(self, handler: 'ParamHandler') -> None:
        """Call handler({name: value}) when live parameters change; it raises to refuse.

        Plain DDS has no parameter services: its parameters are fixed at start (params file,
        -p overrides), so this default keeps the handler unused.
        """

    @abstractmethod
    def publisher(self, topic: str, msg_type: str,
                  depth: Optional[int] = DEPTH) -> Callable[[Any], None]:
        """Return a function that publishes one value (str for String, bool for Bool).

        Reliable delivery; depth is the history kept (KEEP_ALL: every message until acked).
        """

    @abstractmethod
    def subscribe(self, topic: str, msg_type: str, callback: Callable[[Any], None],
                  depth: Optional[int] = DEPTH) -> None:
        """Call callback(value) for each message; str values have invalid UTF-8 replaced."""

    @abstractmethod
    def serve_trigger(self, service: str, handler: TriggerHandler) -> None:
        """Serve a std_srvs/Trigger service."""

    @abstractmethod
    def call_trigger(self, service: str, timeout: float = 10.0) -> Tuple[bool, str]:
        """Call a std_srvs/Trigger service and return (success, message)."""

    @abstractmethod
    def wait_for_subscribers(self, topic: str, msg_type: str, timeout: float) -> bool:
        """Wait until someone subscribes to topic (messages before that are lost)."""

    @abstractmethod
    def wait_for_publishers(self, topic: str, msg_type: str, timeout: float) -> bool:
        """Wait until someone publishes on a topic we subscribe to."""

    @abstractmethod
    def spin(self) -> None:
        """Deliver callbacks until shutdown() or Ctrl-C."""

    @abstractmethod
    def stopping(self) -> bool:
        """Return True once shutdown was asked for (Ctrl-C, SIGTERM, shutdown())."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop spinning and release the transport."""

    def safe(self, what: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a callback so an exception is logged (once per kind) and never kills the node."""
        seen = set()

        def wrapper(*args):
            try:
                return fn(*args)
            except Exception as exc:  # a callback must never take the node down
                key = type(exc).__name__
                if key not in seen:
                    seen.add(key)
                    self.log.exception('%s failed: %s', what, exc)
                else:
                    self.log.error('%s failed again: %s: %s', what, key, exc)
                return None
        return wrapper


def parse_ros_args(argv: Sequence[str]) -> Tuple[List[str], Dict[str, str], Dict[str, str],
                                                 Optional[str]]:
    """Read what the DDS transport honours from ROS arguments (as ros2 launch passes them).

    Returns (params_files, overrides, remaps, log_level) from every --ros-args section:
    --params-file F (each one, later files win), -p name:=value, -r from:=to,
    --log-level [name:=]LEVEL.
    """
    params_files: List[str] = []
    log_level = None
    overrides: Dict[str, str] = {}
    remaps: Dict[str, str] = {}
    inside = False
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg == '--ros-args':
            inside = True
        elif arg == '--':
            inside = False
        elif inside and i + 1 < len(items) and arg in ('--params-file', '-p', '--param', '-r',
                                                       '--remap', '--log-level'):
            value = items[i + 1]
            i += 1
            if arg == '--params-file':
                params_files.append(value)
            elif arg == '--log-level':
                log_level = value.rpartition(':=')[2]
            else:
                name, sep, val = value.partition(':=')
                if not sep:
                    raise TransportError(f'expected name:=value after {arg}, got {value!r}')
                if arg in ('-p', '--param'):
                    overrides[name] = val
                elif not name.startswith('__'):  # __node, __ns: names fixed by the node
                    remaps[name] = val
        i += 1
    return params_files, overrides, remaps, log_level
