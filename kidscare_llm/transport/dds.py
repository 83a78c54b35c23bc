"""Plain DDS through cyclonedds, speaking ROS 2's wire conventions (no ROS install needed).

Topic /x is DDS topic rt/x; service /s is rq/sRequest + rr/sReply with a (client_guid,
sequence_number) header; data representation XCDR1; Jazzy's typehash in USER_DATA. Checked
against rclpy with rmw_cyclonedds_cpp in both directions (see ../shared/DESIGN.md). Discovery
follows ROS_AUTOMATIC_DISCOVERY_RANGE as rmw_cyclonedds_cpp does, LOCALHOST unless set.
"""

from collections import OrderedDict
from contextlib import contextmanager
import os
from pathlib import Path
import queue
import random
import threading
import time
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple
from xml.sax.saxutils import quoteattr

from kidscare_llm.core import paths, settings
from kidscare_llm.core.voice.audio import AudioChunk, chunk_from_stamped, PA_FLOAT32
from kidscare_llm.transport.base import (DEPTH, KEEP_ALL, MSG_AUDIO, MSG_BOOL, MSG_STRING,
                                         resolve_name, SRV_TRIGGER, Transport, TransportError,
                                         TriggerHandler, wait_until)

TYPE_HASH = {
    MSG_STRING: 'RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18',
    MSG_BOOL: 'RIHS01_feb91e995ff9ebd09c0cb3d2aed18b11077585839fb5db80193b62d74528f6c9',
    MSG_AUDIO: 'RIHS01_f6ad36427cfe3e7132f91509dca5a3be31b9b681f182db6e606e95e781b21611',
    SRV_TRIGGER + '_Request':
        'RIHS01_d010825374ce8918e72bfd826c82603e60f45419e932ea976f807b74a863a199',
    SRV_TRIGGER + '_Response':
        'RIHS01_2d946c21e2fc3f1e9ca6986a8191d85fcc70097a8bb7771a053564bc47009cdf',
}


def _string_payload(data: bytes) -> str:
    """Decode a CDR std_msgs/String whose bytes are not UTF-8, replacing the bad bytes."""
    order = 'little' if data[1] in (1, 3) else 'big'  # encapsulation: CDR_LE=1, PL_CDR_LE=3
    size = int.from_bytes(data[4:8], order)
    return data[8:8 + max(size - 1, 0)].decode('utf-8', 'replace')


RANGES = ('LOCALHOST', 'SUBNET', 'OFF', 'SYSTEM_DEFAULT')


def discovery_config(env: Mapping[str, str] = os.environ) -> str:
    """Return the Cyclone DDS configuration for ROS 2's discovery settings in env.

    The same fragment rmw_cyclonedds_cpp (Jazzy) puts before CYCLONEDDS_URI, so plain-DDS
    nodes and ROS 2 nodes find each other alike. ROS_AUTOMATIC_DISCOVERY_RANGE decides;
    unset, ROS_LOCALHOST_ONLY=0 means SUBNET, anything else LOCALHOST: like the launch file,
    a child's words stay on this computer unless someone opens it up. ROS_STATIC_PEERS adds
    peers (LOCALHOST, SUBNET).
    """
    scope = (env.get('ROS_AUTOMATIC_DISCOVERY_RANGE') or '').strip().upper()
    if not scope:
        scope = 'SUBNET' if env.get('ROS_LOCALHOST_ONLY', '').strip() == '0' else 'LOCALHOST'
    if scope not in RANGES:
        raise TransportError(f'ROS_AUTOMATIC_DISCOVERY_RANGE={scope}: use one of '
                             + ', '.join(RANGES))
    peers = [p.strip() for p in env.get('ROS_STATIC_PEERS', '').split(';') if p.strip()]
    if scope == 'LOCALHOST':
        peers.insert(0, 'localhost')
    elif scope != 'SUBNET':
        peers = []
    parts = []
    if scope in ('LOCALHOST', 'OFF'):
        parts.append('<General><AllowMulticast>false</AllowMulticast></General>')
    if scope == 'OFF':  # a tag no other process shares: nobody discovers us
        parts.append(f'<Discovery><ParticipantIndex>none</ParticipantIndex>'
                     f'<Tag>ros_discovery_off_{os.getpid()}</Tag></Discovery>')
    elif peers:
        parts.append('<Discovery><ParticipantIndex>auto</ParticipantIndex>'
                     '<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex><Peers>'
                     + ''.join(f'<Peer address={quoteattr(p)}/>' for p in peers)
                     + '</Peers></Discovery>')
    fragment = f'<CycloneDDS><Domain>{"".join(parts)}</Domain></CycloneDDS>' if parts else ''
    return ','.join(c for c in (fragment, env.get('CYCLONEDDS_URI', '')) if c)


_DDS: Optional[SimpleNamespace] = None
_DOMAINS: Dict[int, Any] = {}  # the configured Domain of each id this process joined
_LOCK = threading.Lock()
KEEP_ALL_PATIENCE_S = 60.0
RESEND_S = 1.0  # a service request without a reply is sent again after this long


def _dds() -> SimpleNamespace:
    """Import cyclonedds and define the ROS 2 message types once, on first use."""
    global _DDS
    if _DDS is not None:
        return _DDS
    from dataclasses import dataclass

    from cyclonedds import core, domain, pub, sub, topic, util
    from cyclonedds.idl import IdlStruct, types

    @dataclass
    class String_(IdlStruct, typename='std_msgs::msg::dds_::String_'):
        data: str

        @classmethod
        def deserialize(cls, data, has_header=True, use_version_2=None):
            try:
                return super().deserialize(data, has_header=has_header,
                                           use_version_2=use_version_2)
            except UnicodeDecodeError:
                sample = cls(data=_string_payload(bytes(data)))
                sample.invalid_utf8 = True
                return sample

    @dataclass
    class Bool_(IdlStruct, typename='std_msgs::msg::dds_::Bool_'):
        data: bool

    @dataclass
    class Time_(IdlStruct, typename='builtin_interfaces::msg::dds_::Time_'):
        sec: types.int32
        nanosec: types.uint32

    @dataclass
    class Header_(IdlStruct, typename='std_msgs::msg::dds_::Header_'):
        stamp: Time_
        frame_id: str

    @dataclass
    class AudioData_(IdlStruct, typename='audio_common_msgs::msg::dds_::AudioData_'):
        float32_data: types.sequence[types.float32]
        int32_data: types.sequence[types.int32]
        int16_data: types.sequence[types.int16]
        int8_data: types.sequence[types.int8]
        uint8_data: types.sequence[types.uint8]

    @dataclass
    class AudioInfo_(IdlStruct, typename='audio_common_msgs::msg::dds_::AudioInfo_'):
        format: types.int32
        channels: types.int32
        rate: types.int32
        chunk: types.int32

    @dataclass
    class Audio_(IdlStruct, typename='audio_common_msgs::msg::dds_::Audio_'):
        audio_data: AudioData_
        info: AudioInfo_

    @dataclass
    class AudioStamped_(IdlStruct, typename='audio_common_msgs::msg::dds_::AudioStamped_'):
        header: Header_
        audio: Audio_

    def audio_stamped(chunk: AudioChunk) -> AudioStamped_:
        now = time.time_ns()
        samples = [float(v) for v in chunk.samples]
        return AudioStamped_(Header_(Time_(now // 10**9, now % 10**9), ''), Audio_(
            AudioData_(samples, [], [], [], []),
            AudioInfo_(PA_FLOAT32, 1, int(chunk.rate), len(samples))))

    @dataclass
    class Trigger_Request_(IdlStruct, typename='std_srvs::srv::dds_::Trigger_Request_'):
        client_guid: types.uint64
        sequence_number: types.int64
        structure_needs_at_least_one_member: types.uint8 = 0

    @dataclass
    class Trigger_Response_(IdlStruct, typename='std_srvs::srv::dds_::Trigger_Response_'):
        client_guid: types.uint64
        sequence_number: types.int64
        success: bool = False
        message: str = ''

    _DDS = SimpleNamespace(core=core, domain=domain, pub=pub, sub=sub, topic=topic, util=util,
                           types={MSG_STRING: String_, MSG_BOOL: Bool_, MSG_AUDIO: AudioStamped_,
                                  SRV_TRIGGER + '_Request': Trigger_Request_,
                                  SRV_TRIGGER + '_Response': Trigger_Response_},
                           # value -> message, and back, per topic type
                           make={MSG_STRING: lambda value: String_(data=value),
                                 MSG_BOOL: lambda value: Bool_(data=value),
                                 MSG_AUDIO: audio_stamped},
                           value={MSG_STRING: lambda msg: msg.data, MSG_BOOL: lambda msg: msg.data,
                                  MSG_AUDIO: chunk_from_stamped})
    return _DDS


class DdsTransport(Transport):
    """A node's endpoints on one cyclonedds DomainParticipant; callbacks from DDS listeners."""

    def __init__(self, node_name: str, params_files: Sequence[Path] = (),
                 overrides: Optional[Mapping[str, Any]] = None,
                 remaps: Optional[Mapping[str, str]] = None, namespace: str = '/',
                 domain_id: Optional[int] = None):
        super().__init__(node_name)
        self._params_files = list(params_files)
        self._overrides = dict(overrides or {})
        self._remaps = dict(remaps or {})
        self._namespace = namespace
        self._m = _dds()
        if domain_id is None:
            domain_id = int(os.environ.get('ROS_DOMAIN_ID', '0') or 0)
        self._join(domain_id)
        try:
            self._dp = self._m.domain.DomainParticipant(domain_id)
        except Exception as exc:
            raise TransportError(f'cannot join DDS domain {domain_id}: {exc} (check '
                                 'CYCLONEDDS_URI)') from exc
        self._topics: Dict[Tuple[str, str], Any] = {}
        self._writers: Dict[Tuple[str, str], Any] = {}
        self._entities = []  # keep readers and listeners alive
        self._clients: Dict[str, Any] = {}
        self._subscribed: Dict[str, Any] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._services: Optional[queue.Queue] = None
        self._in_listener = threading.local()  # set on a DDS thread while it runs our callback
        self._closed = False

    def _join(self, domain_id: int) -> None:
        """Create the domain with our discovery configuration, once per process."""
        with _LOCK:
            if domain_id in _DOMAINS:
                return
            config = discovery_config()
            try:
                _DOMAINS[domain_id] = self._m.domain.Domain(domain_id, config) if config \
                    else None
            except self._m.core.DDSException as exc:  # joined already by other code here
                self.log.debug('domain %d keeps its configuration: %s', domain_id, exc)
                _DOMAINS[domain_id] = None

    # -- names and QoS -------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        """Resolve a ROS name for this node (private '~/', relative, remapped)."""
        return resolve_name(name, self.node_name, self._namespace, self._remaps)

    def _qos(self, type_key: Optional[str] = None, depth: Optional[int] = DEPTH):
        core, util = self._m.core, self._m.util
        history = core.Policy.History.KeepAll if depth is KEEP_ALL else \
            core.Policy.History.KeepLast(depth)
        policies = [core.Policy.Reliability.Reliable(util.duration(seconds=1)),
                    history, core.Policy.Durability.Volatile,
                    core.Policy.DataRepresentation(use_cdrv0_representation=True)]
        if type_key:
            policies.append(core.Policy.Userdata(f'typehash={TYPE_HASH[type_key]};'.encode()))
        return core.Qos(*policies)

    def _topic(self, dds_name: str, type_key: str):
        key = (dds_name, type_key)
        with self._lock:
            if key not in self._topics:
                self._topics[key] = self._m.topic.Topic(self._dp, dds_name,
                                                        self._m.types[type_key], qos=self._qos())
            return self._topics[key]

    def _writer(self, dds_name: str, type_key: str, depth: Optional[int] = DEPTH):
        key = (dds_name, type_key)
        topic = self._topic(dds_name, type_key)
        with self._lock:
            if key not in self._writers:
                self._writers[key] = self._m.pub.DataWriter(self._dp, topic,
                                                            qos=self._qos(type_key, depth))
            return self._writers[key]

    def _reader(self, dds_name: str, type_key: str, on_sample: Optional[Callable] = None,
                depth: Optional[int] = DEPTH):
        topic = self._topic(dds_name, type_key)
        qos = self._qos(type_key, depth)
        if on_sample is None:
            reader = self._m.sub.DataReader(self._dp, topic, qos=qos)
            self._entities.append((reader, None))
            return reader
        # Samples can arrive (and the listener fire) before the Python reader object exists;
        # cyclonedds then hands the callback None. Such a wake-up is remembered and the reader
        # drained once it exists, so nothing waits for the next message.
        state = SimpleNamespace(reader=None, missed=False, lock=threading.Lock(),
                                drain=threading.Lock())

        def drain(reader) -> None:
            # Everything, in order: the listener fires on new data, not on data left unread.
            with state.drain:
                self._in_listener.active = True
                try:
                    while not self._stop.is_set():
                        samples = reader.take(N=256)
                        if not samples:
                            return
                        for sample in samples:
                            if sample.sample_info.valid_data:  # not a writer-gone notice
                                on_sample(sample)
                finally:
                    self._in_listener.active = False

        def on_data_available(_reader) -> None:
            with state.lock:
                reader, state.missed = state.reader, state.reader is None
            if reader is not None:
                drain(reader)
        listener = self._m.core.Listener(on_data_available=on_data_available)
        reader = self._m.sub.DataReader(self._dp, topic, qos=qos, listener=listener)
        with state.lock:
            state.reader, missed = reader, state.missed
        if missed:
            threading.Thread(target=drain, args=(reader,), name=f'{dds_name}-first',
                             daemon=True).start()
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
        make = self._m.make[msg_type]
        # A KEEP_ALL write waits for a slow reader's acknowledgements; on a busy CPU that can
        # take longer than one blocking period: wait again rather than lose the message.
        patience = KEEP_ALL_PATIENCE_S if depth is KEEP_ALL else 0.0

        def write(value) -> None:
            deadline = time.monotonic() + patience
            while True:
                try:
                    return writer.write(make(value))
                except self._m.core.DDSException as exc:
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
        value_of = self._m.value[msg_type]
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
        reply_cls = self._m.types[SRV_TRIGGER + '_Response']
        writer = self._writer(f'rr{name}Reply', SRV_TRIGGER + '_Response')
        run = self.safe(f'service {name}', handler)
        answered: 'OrderedDict[Tuple[int, int], Tuple[bool, str]]' = OrderedDict()

        def answer(req) -> None:
            key = (req.client_guid, req.sequence_number)
            if key not in answered:
                result = run()
                answered[key] = result if result is not None else \
                    (False, 'internal error, see log')
                while len(answered) > 64:
                    answered.popitem(last=False)
            ok, message = answered[key]
            # The caller's reply reader may not be matched by our writer yet (discovery runs
            # per direction): wait briefly so the reply is not written to nobody.
            wait_until(lambda: writer.get_matched_subscriptions(), 2.0)
            writer.write(reply_cls(client_guid=req.client_guid,
                                   sequence_number=req.sequence_number,
                                   success=bool(ok), message=str(message)))
        self._reader(f'rq{name}Request', SRV_TRIGGER + '_Request',
                     lambda req: self._service_queue().put(lambda: answer(req)))

    def _service_queue(self) -> 'queue.Queue':
        """Return the queue of the service thread, starting the thread on first use."""
        with self._lock:
            if self._services is None:
                self._services = queue.Queue()
                threading.Thread(target=self._serve, name=f'{self.node_name}-services',
                                 daemon=True).start()
            return self._services

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._services.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                job()
            except Exception as exc:  # a failed reply must not end the service thread
                if not self._closed:
                    self.log.error('service reply failed: %s', exc)

    def call_trigger(self, service: str, timeout: float = 10.0) -> Tuple[bool, str]:
        """Call a Trigger service: wait for the server, send, wait for our reply.

        The request is re-sent every RESEND_S until its reply comes (the server answers a
        repeated request from its cache), so a reply lost to discovery timing is not fatal.
        """
        name = self.resolve(service)
        with self._in_use(f'service {name}'):
            return self._call(name, timeout)

    def _call(self, name: str, timeout: float) -> Tuple[bool, str]:
        with self._lock:
            client = self._clients.get(name)
        if client is None:
            writer = self._writer(f'rq{name}Request', SRV_TRIGGER + '_Request')
            reader = self._reader(f'rr{name}Reply', SRV_TRIGGER + '_Response')
            client = SimpleNamespace(writer=writer, reader=reader, seq=0,
                                     guid=random.getrandbits(63))
            with self._lock:
                self._clients[name] = client
        deadline = time.monotonic() + timeout
        matched = (lambda: client.writer.get_matched_subscriptions()
                   and client.reader.get_matched_publications())
        if not wait_until(matched, timeout):
            raise TransportError(f'service {name} not available within {timeout:.0f} s')
        client.seq += 1
        request = self._m.types[SRV_TRIGGER + '_Request'](client.guid, client.seq)
        sent = float('-inf')
        while time.monotonic() < deadline:
            if time.monotonic() - sent >= RESEND_S:
                client.writer.write(request)
                sent = time.monotonic()
            for reply in client.reader.take(N=16):
                if reply.client_guid == client.guid and reply.sequence_number == client.seq:
                    return bool(reply.success), reply.message
            time.sleep(0.01)
        raise TransportError(f'service {name} did not answer within {timeout:.0f} s')

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
                except self._m.core.DDSException as exc:
                    self.log.debug('detaching a listener: %s', exc)
        # cyclonedds deletes an entity (and its children) in __del__; no public call does it.
        self._m.core.Entity.__del__(self._dp)

    @contextmanager
    def _in_use(self, what: str) -> Iterator[None]:
        """Turn DDS errors into TransportError, saying so plainly after shutdown()."""
        if self._closed:
            raise TransportError(f'{what}: the transport is shut down')
        try:
            yield
        except self._m.core.DDSException as exc:
            if self._closed:
                raise TransportError(f'{what}: the transport is shut down') from None
            raise TransportError(f'{what}: {exc}') from None

    def _check_type(self, msg_type: str) -> None:
        if msg_type not in self._m.types:
            raise TransportError(f'the DDS transport does not know {msg_type}')
