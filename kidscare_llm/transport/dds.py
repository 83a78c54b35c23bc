"""Plain DDS through cyclonedds, speaking ROS 2's wire conventions (no ROS install needed).

Topic /x is DDS topic rt/x; service /s is rq/sRequest + rr/sReply with a (client_guid,
sequence_number) header; data representation XCDR1; Jazzy's typehash in USER_DATA. Checked
against rclpy with rmw_cyclonedds_cpp in both directions (see ../shared/DESIGN.md). Discovery
follows ROS_AUTOMATIC_DISCOVERY_RANGE as rmw_cyclonedds_cpp does, LOCALHOST unless set.

The parts live beside this module: dds_types (the message classes and type hashes),
dds_discovery (discovery and QoS), dds_listener (delivery to Python), dds_services (Trigger).
"""

from contextlib import contextmanager
import os
from pathlib import Path
import threading
import time
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

from cyclonedds import core, domain, pub, sub, topic as dds_topic

from kidscare_llm.core import paths, settings
from kidscare_llm.transport.base import (DEPTH, KEEP_ALL, resolve_name, Transport,
                                         TransportError, TriggerHandler, wait_until)
from kidscare_llm.transport.dds_discovery import discovery_config, join_domain, qos, RANGES
from kidscare_llm.transport.dds_listener import DrainingListener
from kidscare_llm.transport.dds_services import (RESEND_S, ServiceThread, TriggerClient,
                                                 TriggerServer)
from kidscare_llm.transport.dds_types import MAKE, REQUEST, RESPONSE, TYPE_HASH, TYPES, VALUE

__all__ = ['DdsTransport', 'KEEP_ALL_PATIENCE_S', 'RANGES', 'RESEND_S', 'TYPE_HASH',
           'discovery_config']

KEEP_ALL_PATIENCE_S = 60.0


class DdsTransport(Transport):
    """A node's endpoints on one cyclonedds DomainParticipant; callbacks from DDS listeners.

    Parameters are fixed at start (the params files, then overrides such as -p): plain DDS has
    no parameter services, so `ros2 param set` does not exist here and on_parameter_change()
    keeps Transport's no-op. Restart the node to change a parameter.

    Long because it implements the whole Transport interface over one participant; what can
    stand alone (types, discovery and QoS, delivery, services) is in the dds_* modules.
    """

    def __init__(self, node_name: str, params_files: Sequence[Path] = (),
                 overrides: Optional[Mapping[str, Any]] = None,
                 remaps: Optional[Mapping[str, str]] = None, namespace: str = '/',
                 domain_id: Optional[int] = None):
        super().__init__(node_name)
        self._params_files = list(params_files)
        self._overrides = dict(overrides or {})
        self._remaps = dict(remaps or {})
        self._namespace = namespace
        if domain_id is None:
            domain_id = int(os.environ.get('ROS_DOMAIN_ID', '0') or 0)
        join_domain(domain_id, self.log)
        try:
            self._dp = domain.DomainParticipant(domain_id)
        except Exception as exc:
            raise TransportError(f'cannot join DDS domain {domain_id}: {exc} (check '
                                 'CYCLONEDDS_URI)') from exc
        self._topics: Dict[Tuple[str, str], Any] = {}
        self._writers: Dict[Tuple[str, str], Any] = {}
        self._entities = []  # (reader, listener or None): keep them alive, detach at shutdown
        self._clients: Dict[str, TriggerClient] = {}
        self._subscribed: Dict[str, Any] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._services: Optional[ServiceThread] = None
        self._in_listener = threading.local()  # set on a DDS thread while it runs our callback
        self._closed = False

    # -- names and entities ----------------------------------------------------------------
    def resolve(self, name: str) -> str:
        """Resolve a ROS name for this node (private '~/', relative, remapped)."""
        return resolve_name(name, self.node_name, self._namespace, self._remaps)

    def _topic(self, dds_name: str, type_key: str):
        key = (dds_name, type_key)
        with self._lock:
            if key not in self._topics:
                self._topics[key] = dds_topic.Topic(self._dp, dds_name, TYPES[type_key],
                                                    qos=qos())
            return self._topics[key]

    def _writer(self, dds_name: str, type_key: str, depth: Optional[int] = DEPTH):
        key = (dds_name, type_key)
        topic = self._topic(dds_name, type_key)
        with self._lock:
            if key not in self._writers:
                self._writers[key] = pub.DataWriter(self._dp, topic, qos=qos(type_key, depth))
            return self._writers[key]

    def _reader(self, dds_name: str, type_key: str, on_sample: Optional[Callable] = None,
                depth: Optional[int] = DEPTH):
        """Return a reader; with on_sample, each sample goes to it on a DDS listener thread."""
        topic = self._topic(dds_name, type_key)
        if on_sample is None:
            reader = sub.DataReader(self._dp, topic, qos=qos(type_key, depth))
            self._entities.append((reader, None))
            return reader
        listener = DrainingListener(on_sample, self._stop, self._in_listener, dds_name)
        reader = listener.open(self._dp, topic, qos(type_key, depth))
        self._entities.append((reader, listener))
        return reader

    # -- Transport -------------------------------------------------------------------------
    def parameters(self, node: str) -> Dict[str, Any]:
        """Read parameters from the params files (default: the packaged kidscare.yaml)."""
        return settings.load(node, self._params_files or [paths.default_params_file()],
                             self._overrides)

    def publisher(self, topic: str, msg_type: str,
                  depth: Optional[int] = DEPTH) -> Callable[[Any], None]:
        """Return a function that writes one value on rt/<topic>."""
        self._check_type(msg_type)
        name = self.resolve(topic)
        writer = self._writer('rt' + name, msg_type, depth)
        make = MAKE[msg_type]
        # A KEEP_ALL write waits for a slow reader's acknowledgements; on a busy CPU that can
        # take longer than one blocking period: wait again rather than lose the message.
        patience = KEEP_ALL_PATIENCE_S if depth is KEEP_ALL else 0.0

        def write(value) -> None:
            deadline = time.monotonic() + patience
            while True:
                try:
                    return writer.write(make(value))
                except core.DDSException as exc:
                    if self._closed:
                        self.log.debug('%s: not written, the transport is shut down', name)
                        return None
                    if 'TIMEOUT' not in str(exc) or self._stop.is_set() or \
                            time.monotonic() > deadline:
                        raise TransportError(f'{name}: write failed: {exc}') from None
                    self.log.warning('%s: readers are slow to acknowledge, still writing', name)
        return write

    def subscribe(self, topic: str, msg_type: str, callback: Callable[[Any], None],
                  depth: Optional[int] = DEPTH) -> None:
        """Call callback(value) for each message on rt/<topic>.

        Values: String str, Bool bool, AudioStamped core.audio.AudioChunk.
        """
        self._check_type(msg_type)
        name = self.resolve(topic)
        value_of = VALUE[msg_type]
        cb = self.safe(f'subscription {name}', lambda sample: callback(value_of(sample)))

        def on_sample(sample):
            if getattr(sample, 'invalid_utf8', False):
                self.log.warning('%s: message with invalid UTF-8, bad bytes replaced', name)
            cb(sample)
        self._subscribed[name] = self._reader('rt' + name, msg_type, on_sample, depth)

    def serve_trigger(self, service: str, handler: TriggerHandler) -> None:
        """Answer std_srvs/Trigger requests on rq/<service>Request, off the receive thread.

        Handlers run one at a time on a service thread (a DDS listener must not block).
        Requests are idempotent per (client_guid, sequence_number): a client that re-sends a
        request whose reply it missed gets the same reply again, not a second run.
        """
        name = self.resolve(service)
        server = TriggerServer(self._writer(f'rr{name}Reply', RESPONSE),
                               self.safe(f'service {name}', handler))
        self._reader(f'rq{name}Request', REQUEST,
                     lambda req: self._service_thread().put(lambda: server.answer(req)))

    def _service_thread(self) -> ServiceThread:
        """Return the service thread, starting it on first use."""
        with self._lock:
            if self._services is None:
                self._services = ServiceThread(f'{self.node_name}-services', self._stop,
                                               lambda: self._closed, self.log)
            return self._services

    def call_trigger(self, service: str, timeout: float = 10.0) -> Tuple[bool, str]:
        """Call a Trigger service: wait for the server, send, wait for our reply.

        The request is re-sent every RESEND_S until its reply comes (the server answers a
        repeated request from its cache), so a reply lost to discovery timing is not fatal.
        """
        name = self.resolve(service)
        with self._in_use(f'service {name}'):
            with self._lock:
                client = self._clients.get(name)
            if client is None:
                client = TriggerClient(name, self._writer(f'rq{name}Request', REQUEST),
                                       self._reader(f'rr{name}Reply', RESPONSE))
                with self._lock:
                    self._clients[name] = client
            return client.call(timeout)

    def wait_for_subscribers(self, topic: str, msg_type: str, timeout: float) -> bool:
        """Wait until a reader matches our writer on rt/<topic>."""
        name = self.resolve(topic)
        with self._in_use(name):
            writer = self._writer('rt' + name, msg_type)
            return wait_until(lambda: writer.get_matched_subscriptions(), timeout)

    def wait_for_publishers(self, topic: str, msg_type: str, timeout: float) -> bool:
        """Wait until a writer matches our reader on rt/<topic> (subscribe() first)."""
        name = self.resolve(topic)
        with self._in_use(name):
            reader = self._subscribed.get(name)
            if reader is None:
                raise TransportError(f'not subscribed to {name}')
            return wait_until(lambda: reader.get_matched_publications(), timeout)

    def spin(self) -> None:
        """Block until shutdown(); DDS listeners deliver the callbacks meanwhile."""
        while not self._stop.wait(0.5):
            pass

    def stopping(self) -> bool:
        """Return True once shutdown() was called."""
        return self._stop.is_set()

    def shutdown(self) -> None:
        """Stop spin(), detach every listener, then delete the participant and its entities.

        Setting a reader's listener waits for a callback in progress, so once this returns no
        DDS thread calls into Python again (a process may free its models and exit without a
        callback arriving mid-finalisation), and peers stop matching our readers at once.
        Later use raises TransportError; a publisher's write is dropped.
        """
        self._stop.set()
        if getattr(self._in_listener, 'active', False):
            return  # called from one of our callbacks: detaching would wait for itself
        with self._lock:
            if self._closed:
                return
            self._closed = True
            entities, self._entities = self._entities, []
            self._clients.clear()
            self._subscribed.clear()
            self._writers.clear()
            self._topics.clear()
        for reader, listener in entities:
            if listener is not None:
                try:
                    reader.set_listener(None)
                except core.DDSException as exc:
                    self.log.debug('detaching a listener: %s', exc)
        # cyclonedds deletes an entity (and its children) in __del__; no public call does it.
        core.Entity.__del__(self._dp)

    @contextmanager
    def _in_use(self, what: str) -> Iterator[None]:
        """Turn DDS errors into TransportError, saying so plainly after shutdown()."""
        if self._closed:
            raise TransportError(f'{what}: the transport is shut down')
        try:
            yield
        except core.DDSException as exc:
            if self._closed:
                raise TransportError(f'{what}: the transport is shut down') from None
            raise TransportError(f'{what}: {exc}') from None

    def _check_type(self, msg_type: str) -> None:
        if msg_type not in TYPES:
            raise TransportError(f'the DDS transport does not know {msg_type}')
