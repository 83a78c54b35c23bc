"""What the benches that talk to node processes share: one place for each of these.

  env = loopback_env()                       # loopback-only DDS, a ROS domain of the benches
  node = start_node('chat', {'llm.max_tokens': 64}, env, data_dir, timeout=300)
  client = NodeClient(env)                   # the chat node's topics, over our DDS transport
  client.wait(60)
  answer = client.ask('hello', user='bench_1')   # text, kind, pieces, timings (None if none)
  stop(node)
  emit({'figure': 1.0})                      # the last line: one JSON object

run(main) runs a bench's main(): a BenchError or a configuration error ends it with one line
on stderr (no traceback), SIGTERM runs its finally blocks. Nothing here imports from test/.
"""

from dataclasses import dataclass, field
import fcntl
import json
import os
from pathlib import Path
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

BIN = Path(sys.executable).parent
CHAT = 'chat_node'
# The tests take ROS domains 10-231 (conftest 100-200, test_gui that minus 90 or 80,
# test_reliability 201-230, test_transport 231); the benches take 1-9, one per bench process
# (a lock file each), so a bench never hears a test run or another bench.
DOMAINS = range(1, 10)
# test/cyclonedds-loopback.xml, inline: the loopback interface only, unicast discovery.
LOOPBACK = ('<CycloneDDS><Domain Id="any"><General><Interfaces><NetworkInterface name="lo"/>'
            '</Interfaces><AllowMulticast>false</AllowMulticast></General><Discovery>'
            '<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32'
            '</MaxAutoParticipantIndex><Peers><Peer address="127.0.0.1"/></Peers></Discovery>'
            '</Domain></CycloneDDS>')
DDS_KEYS = ('CYCLONEDDS_URI', 'ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')
NODES = {  # kind: (command, parameter syntax after it, log line that says it is ready)
    'chat': (['kidscare-llm', 'node', '--transport', 'dds'], '{}={}', 'chat node ready'),
    'stt': (['stt_node', '--transport', 'dds', '--ros-args'], '{}:={}', 'stt node ready'),
    'tts': (['tts_node', '--transport', 'dds', '--ros-args'], '{}:={}', 'tts node ready'),
}
WARM = 'persona prefix evaluated'  # the chat node answers at once after this (warm_start)
_held: List[Any] = []  # the domain lock files this process holds until it exits


class BenchError(Exception):
    """A bench cannot go on; run() prints the message as one line and exits 1."""


def _lock_domain() -> int:
    """Return a domain of DOMAINS no other bench on this computer holds, and hold it."""
    for domain in random.sample(list(DOMAINS), len(DOMAINS)):
        handle = open(Path(tempfile.gettempdir()) / f'kidscare-bench-domain-{domain}.lock', 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held.append(handle)
        return domain
    raise BenchError(f'every bench ROS domain ({DOMAINS.start}-{DOMAINS.stop - 1}) is in use '
                     'by another bench; wait for one to finish')


def loopback_env(domain: Optional[int] = None) -> Dict[str, str]:
    """Return os.environ with loopback-only DDS on a bench ROS domain (a free one if None)."""
    return dict(os.environ, CYCLONEDDS_URI=LOOPBACK,
                ROS_DOMAIN_ID=str(_lock_domain() if domain is None else domain),
                ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')


def _warm_start(overrides: Mapping[str, Any]) -> bool:
    """Return the chat node's memory.warm_start for these overrides (checked like the node)."""
    from kidscare_llm.core import settings
    return bool(settings.load(settings.CHAT_NODE, overrides=dict(overrides))
                ['memory.warm_start'])


def _last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors='replace').splitlines() if ln.strip()]
    return lines[-1].strip()[:200] if lines else '(empty)'


def start_node(kind: str, overrides: Optional[Mapping[str, Any]] = None,
               env: Optional[Mapping[str, str]] = None, data_dir: Optional[Path] = None,
               timeout: float = 300.0) -> subprocess.Popen:
    """Start a chat, stt or tts node process over DDS; return it once it is ready.

    overrides are node parameters by dotted name; the log is data_dir/<kind>_node.log
    (proc.log). Ready: the node logged so, and for a warm-starting chat node its persona
    prefix is evaluated. Raises BenchError naming the log when it exits or times out first.
    """
    command, syntax, ready = NODES[kind]
    overrides = {k: str(v) if isinstance(v, Path) else v for k, v in (overrides or {}).items()}
    markers = [ready] + ([WARM] if kind == 'chat' and _warm_start(overrides) else [])
    data_dir = Path(data_dir or tempfile.mkdtemp(prefix=f'bench-{kind}-'))
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f'{kind}_node.log'
    params = [a for k, v in overrides.items() for a in ('-p', syntax.format(k, v))]
    with log.open('wb') as out:
        proc = subprocess.Popen([str(BIN / command[0]), *command[1:], *params],
                                env=dict(env or os.environ, KIDSCARE_DATA_DIR=str(data_dir),
                                         PYTHONUNBUFFERED='1'),
                                stdout=out, stderr=subprocess.STDOUT)
    proc.log = log
    deadline = time.monotonic() + timeout
    while not all(m in log.read_text(errors='replace') for m in markers):
        if proc.poll() is not None:
            raise BenchError(f'{kind} node exited ({proc.returncode}) before it was ready; '
                             f'see {log}: {_last_line(log)}')
        if time.monotonic() > deadline:
            stop(proc)
            raise BenchError(f'{kind} node not ready within {timeout:.0f} s; see {log}: '
                             f'{_last_line(log)}')
        time.sleep(0.2)
    return proc


def stop(proc: Optional[subprocess.Popen], timeout: float = 20.0) -> Optional[int]:
    """Stop a node process; return its exit code.

    SIGINT first, as ros2 launch does: the node closes cleanly (0). Then SIGTERM after
    timeout seconds (the plain-DDS node has no handler for it: it dies at once), then kill.
    """
    if proc is None:
        return None
    for ask in (lambda: proc.send_signal(signal.SIGINT), proc.terminate, proc.kill):
        if proc.poll() is not None:
            break
        ask()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    return proc.returncode


def canned_lines() -> Dict[str, str]:
    """Return {line: kind} for what the chat node says without the model.

    kind: busy, error, canned (too long, nothing to say) or safety (a category's safe line).
    """
    import yaml

    from kidscare_llm.core import paths
    from kidscare_llm.core.chat.persona import packaged_persona
    persona = packaged_persona()
    kinds = {persona.line(k): k if k in ('busy', 'error') else 'canned'
             for k in ('busy', 'error', 'empty', 'too_long')}
    policy = yaml.safe_load((paths.share_dir() / 'config' / 'safety' / 'policy.yaml')
                            .read_text(encoding='utf-8'))
    for by_language in (policy.get('replies') or {}).values():
        for lines in by_language.values():
            kinds.update({line.strip(): 'safety' for line in lines})
    return kinds


@dataclass
class Answer:
    """One reply of the chat node, as a client saw it; None timings when nothing arrived."""

    text: Optional[str]  # /robot_reply; None: no reply within the timeout
    kind: str  # reply | busy | safety | error | canned | timeout
    pieces: List[str] = field(default_factory=list)  # /robot_reply_stream, in order
    sentences: List[str] = field(default_factory=list)  # /robot_reply_partial
    first_piece_s: Optional[float] = None  # publish -> first streamed piece
    stream_s: Optional[float] = None  # first -> last streamed piece
    total_s: Optional[float] = None  # publish -> /robot_reply

    @property
    def streamed(self) -> bool:
        """Return True when streamed pieces came with the reply."""
        return bool(self.pieces)


class NodeClient:
    """The chat node's topics over the package's DDS transport: ask, say, switch, cancel.

    env (loopback_env()) is applied to this process before the transport joins its domain.
    listen=False: publishers only (a flood's senders); keep_all: utterances are never
    overwritten in our history. on_partial(text) and on_reply(text) run on DDS threads.
    """

    def __init__(self, env: Mapping[str, str], name: str = 'bench_client', node: str = CHAT,
                 listen: bool = True, keep_all: bool = False,
                 on_partial: Optional[Callable[[str], None]] = None,
                 on_reply: Optional[Callable[[str], None]] = None):
        os.environ.update({k: env[k] for k in DDS_KEYS if k in env})
        from kidscare_llm.transport import create, KEEP_ALL, MSG_STRING
        from kidscare_llm.transport.base import DEPTH
        self._string = MSG_STRING
        self.node = node
        self.transport = create(name, 'dds')
        self.kinds = canned_lines()
        self._lock = threading.Lock()
        self._pieces: List[tuple] = []
        self._sentences: List[str] = []
        self._replies: queue.Queue = queue.Queue()
        self.on_partial, self.on_reply = on_partial, on_reply
        self.say = self.transport.publisher('/user_utterance', MSG_STRING,
                                            KEEP_ALL if keep_all else DEPTH)
        self._session = self.transport.publisher(f'/{node}/session', MSG_STRING)
        self.listening = listen
        if listen:
            self.transport.subscribe('/robot_reply_stream', MSG_STRING, self._on_piece)
            self.transport.subscribe('/robot_reply_partial', MSG_STRING, self._on_partial)
            self.transport.subscribe('/robot_reply', MSG_STRING, self._on_reply, KEEP_ALL)

    def _on_piece(self, text: str) -> None:
        with self._lock:
            self._pieces.append((time.perf_counter(), text))

    def _on_partial(self, text: str) -> None:
        with self._lock:
            self._sentences.append(text)
        if self.on_partial:
            self.on_partial(text)

    def _on_reply(self, text: str) -> None:
        self._replies.put((time.perf_counter(), text))
        if self.on_reply:
            self.on_reply(text)

    def wait(self, timeout: float = 60.0, stream: bool = False) -> None:
        """Wait until the node matches our endpoints (stream: its token stream too).

        Raises BenchError when it does not within timeout seconds.
        """
        topics = [('/user_utterance', True), (f'/{self.node}/session', True)]
        if self.listening:
            topics += [('/robot_reply', False), ('/robot_reply_partial', False)]
        if self.listening and stream:
            topics.append(('/robot_reply_stream', False))
        for topic, ours in topics:
            wait = self.transport.wait_for_subscribers if ours else \
                self.transport.wait_for_publishers
            if not wait(topic, self._string, timeout):
                raise BenchError(f'{self.node} not discovered over DDS within {timeout:.0f} s '
                                 f'({topic}; ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID")})')

    def switch(self, user: str, settle: float = 0.3) -> None:
        """Make user the one talking; wait settle s (topics are not ordered among themselves)."""
        self._session(user)
        time.sleep(settle)

    def classify(self, text: Optional[str]) -> str:
        """Return the kind of a reply text (reply when the model wrote it)."""
        return 'timeout' if text is None else self.kinds.get(text.strip(), 'reply')

    def ask(self, text: str, user: Optional[str] = None, timeout: float = 300.0) -> Answer:
        """Say text (as user, when given) and return the next reply with its stream.

        Never raises for what the node sends: no reply within timeout is kind 'timeout', a
        reply without streamed pieces has pieces [] and None piece timings.
        """
        if user is not None:
            self.switch(user)
        while not self._replies.empty():  # late answers of an earlier ask
            self._replies.get_nowait()
        with self._lock:
            self._pieces, self._sentences = [], []
        start = time.perf_counter()
        self.say(text)
        try:
            stamp, reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            stamp, reply = None, None
        kind = self.classify(reply)
        if kind == 'reply':  # a piece may arrive just after the reply (separate topics)
            deadline = time.monotonic() + 0.2
            while not self._pieces and time.monotonic() < deadline:
                time.sleep(0.01)
        with self._lock:
            got, sentences = list(self._pieces), list(self._sentences)
        return Answer(reply, kind, [p for _, p in got], sentences,
                      got[0][0] - start if got else None,
                      got[-1][0] - got[0][0] if got else None,
                      stamp - start if stamp is not None else None)

    def cancel(self, timeout: float = 5.0) -> bool:
        """Ask the node to stop the reply it is generating; False when it did not answer."""
        from kidscare_llm.transport import TransportError
        try:
            return self.transport.call_trigger(f'/{self.node}/cancel', timeout)[0]
        except TransportError:
            return False

    def close(self) -> None:
        """Leave the domain."""
        self.transport.shutdown()


def emit(figures: Mapping[str, Any]) -> None:
    """Print the figures as the last line: one JSON object."""
    print(json.dumps(figures), flush=True)


def _interrupted(signum, frame):
    raise KeyboardInterrupt  # SIGTERM too: run the finally blocks that stop the nodes


def run(main: Callable[[], Optional[int]]) -> None:
    """Run a bench's main() and exit with its code; one line, not a traceback, on failure."""
    from kidscare_llm.core.errors import KidscareError
    signal.signal(signal.SIGTERM, _interrupted)
    name = Path(sys.argv[0]).stem
    try:
        code = main()
    except (BenchError, KidscareError) as exc:
        print(f'{name}: {exc}', file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(f'{name}: stopped', file=sys.stderr)
        code = 130
    sys.exit(code or 0)
