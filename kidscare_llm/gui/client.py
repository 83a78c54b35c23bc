"""The chat window's link to a robot: a running chat node (DDS/rclpy) or an in-process engine.

The window only sees ChatClient: methods that never block (each queues a job for the client's
own worker thread) and Qt signals. Signals may be emitted from the worker or from DDS listener
threads; Qt queues them to the window's (UI) thread, so no widget is touched elsewhere.
"""

from collections import deque
import json
import logging
import queue
import threading
import time
from typing import Any, Optional

from PySide6.QtCore import QObject, Signal

from kidscare_llm.core.errors import KidscareError

log = logging.getLogger('kidscare_llm.gui')

PTT_TOPIC = '/stt_node/push_to_talk'
LISTENING_TOPIC = '/stt_node/listening'
ECHO_S = 10.0  # how long an utterance we sent may take to come back to our own subscription


class ChatClient(QObject):
    """What the window talks to; subclasses do the work on their own threads."""

    state = Signal(str, str)        # connecting|waiting|connected|not_found|lost|loading|
    #                                 ready|failed, detail
    info = Signal(dict)             # {'model', 'backend', 'user', 'session'} (any may be missing)
    piece = Signal(str)             # reply text as it grows (append)
    sentence = Signal(str)          # one whole sentence of the reply
    sources = Signal(list)          # citations of the reply (just before final)
    final = Signal(str)             # the whole reply: the turn is over
    heard = Signal(str)             # an utterance someone else sent (STT): the child's turn
    user_switched = Signal(str)     # someone else switched the node's user
    reset_done = Signal(bool, str)  # reset finished: ok, JSON {user, session} (or the error)
    notice = Signal(str, str)       # key of a message (cancel_failed, error), detail
    listening = Signal(bool)        # the STT node is listening
    ptt_available = Signal(bool)    # an STT node subscribes to push-to-talk

    def __init__(self, user: str, max_chars: int):
        super().__init__()
        self.user = user
        self.max_chars = max_chars
        self._jobs: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=type(self).__name__,
                                        daemon=True)

    # -- called from the UI thread; none of these block --------------------------------------
    def start(self) -> None:
        """Start the worker thread (connect, or load the model)."""
        self._thread.start()

    def send(self, text: str) -> None:
        """Say text as the current user."""
        self._jobs.put(('send', text))

    def set_user(self, user: str) -> None:
        """Switch who is talking; each user keeps their own conversation."""
        self._jobs.put(('user', user))

    def reset(self) -> None:
        """Start a new session for the current user (채팅 초기화)."""
        self._jobs.put(('reset', None))

    def cancel(self) -> None:
        """Stop the reply being generated."""
        self._jobs.put(('cancel', None))

    def push_to_talk(self, down: bool) -> None:
        """Start (True) or stop (False) listening on the STT node."""
        self._jobs.put(('ptt', down))

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker thread and release the transport or the engine."""
        self._stop.set()
        self._jobs.put(('stop', None))
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- worker side -------------------------------------------------------------------------
    def _emit(self, signal, *args) -> None:
        """Emit unless closing (the window may be gone)."""
        if not self._stop.is_set():
            signal.emit(*args)

    def _main(self) -> None:
        raise NotImplementedError


class NodeClient(ChatClient):
    """A client of a running chat node, like rqt: topics and Trigger services, never a model."""

    def __init__(self, user: str, max_chars: int, transport: Optional[str] = None,
                 node_name: str = 'chat_node', wait_s: float = 10.0,
                 client_name: str = 'kidscare_llm_gui'):
        super().__init__(user, max_chars)
        self.transport_name = transport
        self.node_name = node_name
        self.wait_s = wait_s
        self.client_name = client_name
        self._sent = deque()  # (text, time): our own utterances, to skip their echo
        self._sent_users = deque()
        self._lock = threading.Lock()
        self._calls: queue.Queue = queue.Queue()  # service calls, on a thread of their own
        self._described = threading.Event()
        self.transport = None

    def _main(self) -> None:
        from kidscare_llm.transport import create, MSG_BOOL, MSG_STRING

        self._emit(self.state, 'connecting', '')
        try:
            t = self.transport = create(self.client_name, self.transport_name)
        except KidscareError as exc:
            self._emit(self.state, 'failed', str(exc))
            return
        node = f'/{self.node_name}'
        try:
            t.subscribe('/robot_reply_stream', MSG_STRING, self._relay(self.piece))
            t.subscribe('/robot_reply_partial', MSG_STRING, self._relay(self.sentence))
            t.subscribe('/robot_reply_sources', MSG_STRING, self._on_sources)
            t.subscribe('/robot_reply', MSG_STRING, self._relay(self.final))
            t.subscribe('/user_utterance', MSG_STRING, self._on_utterance)
            t.subscribe(f'{node}/session', MSG_STRING, self._on_session)
            t.subscribe(LISTENING_TOPIC, MSG_BOOL, self._relay(self.listening))
            say = t.publisher('/user_utterance', MSG_STRING)
            switch = t.publisher(f'{node}/session', MSG_STRING)
            ptt = t.publisher(PTT_TOPIC, MSG_BOOL)
            self._emit(self.state, 'waiting', '')
            threading.Thread(target=self._call_services, name='NodeClient-services',
                             daemon=True).start()
            started = time.monotonic()
            connected = announced = ptt_seen = False
            asked = 0.0  # when ~/describe was last asked for
            while not self._stop.is_set():
                try:
                    kind, arg = self._jobs.get(timeout=0.1)
                except queue.Empty:
                    kind, arg = None, None
                if kind == 'stop':
                    break
                if kind is not None:
                    self._job(kind, arg, say, switch, ptt, connected)
                up = bool(t.wait_for_publishers('/robot_reply', MSG_STRING, 0)
                          and t.wait_for_subscribers('/user_utterance', MSG_STRING, 0))
                if up and not connected:
                    connected = True
                    # let the node's ~/session reader match too, then tell it who is talking
                    t.wait_for_subscribers(f'{node}/session', MSG_STRING, 2.0)
                    self._remember(self._sent_users, self.user)
                    switch(self.user)
                    time.sleep(0.3)  # let the switch land before asking who is talking
                    self._emit(self.state, 'connected', '')
                    self._described.clear()
                    self._calls.put(('describe', None))
                    asked = time.monotonic()
                elif up and not self._described.is_set() and time.monotonic() - asked > 15:
                    self._calls.put(('describe', None))  # it did not answer: ask again
                    asked = time.monotonic()
                elif not up and connected:
                    connected = False
                    self._emit(self.state, 'lost', '')
                elif not up and not announced and time.monotonic() - started > self.wait_s:
                    announced = True
                    self._emit(self.state, 'not_found', '')
                stt = bool(t.wait_for_subscribers(PTT_TOPIC, MSG_BOOL, 0))
                if stt != ptt_seen:
                    ptt_seen = stt
                    self._emit(self.ptt_available, stt)
        except Exception as exc:  # the window must learn of it, not a dead thread
            log.exception('chat node client failed: %s', exc)
            self._emit(self.state, 'failed', str(exc))
        finally:
            self._calls.put(('stop', None))
            t.shutdown()

    def _call_services(self) -> None:
        """Make the Trigger calls (they wait for the node) without holding up the topics."""
        while True:
            kind, _ = self._calls.get()
            if kind == 'stop' or self._stop.is_set():
                return
            if kind == 'describe':
                self._describe()
                continue
            try:
                if kind == 'reset':
                    self._emit(self.reset_done, *self._reset())
                elif kind == 'cancel':
                    ok, message = self._call('cancel', 5.0)
                    if not ok:
                        self._emit(self.notice, 'cancel_failed', message)
            except KidscareError as exc:
                if kind == 'reset':
                    self._emit(self.reset_done, False, str(exc))
                else:
                    self._emit(self.notice, 'cancel_failed', str(exc))

    def _call(self, service: str, timeout: float):
        return self.transport.call_trigger(f'/{self.node_name}/{service}', timeout)

    def _reset(self):
        """Call ~/reset_session (the transport re-sends a request whose answer was lost)."""
        return self._call('reset_session', 10.0)

    def _job(self, kind: str, arg: Any, say, switch, ptt, connected: bool) -> None:
        try:
            if kind == 'send':
                self._remember(self._sent, arg)
                say(arg)
            elif kind == 'user':
                self.user = arg
                self._remember(self._sent_users, arg)
                switch(arg)
                time.sleep(0.3)  # separate topics are not ordered: let the switch land first
                if connected:
                    self._calls.put(('describe', None))  # the new user's session
            elif kind == 'ptt':
                ptt(bool(arg))
            elif kind in ('reset', 'cancel'):
                self._calls.put((kind, None))
        except KidscareError as exc:
            self._emit(self.notice, 'error', str(exc))

    def _describe(self) -> None:
        """Ask ~/describe which model answers (tolerated when the node lacks it)."""
        try:
            ok, message = self.transport.call_trigger(f'/{self.node_name}/describe', 10.0)
            info = json.loads(message) if ok else {}
            self._described.set()
        except (KidscareError, ValueError) as exc:
            log.info('no model description from /%s: %s', self.node_name, exc)
            info = {}
        self._emit(self.info, info if isinstance(info, dict) else {})

    def _remember(self, sent: deque, text: str) -> None:
        with self._lock:
            sent.append((text, time.monotonic()))

    def _is_echo(self, sent: deque, text: str) -> bool:
        """Return True (once) when text is one we sent ourselves within ECHO_S."""
        now = time.monotonic()
        with self._lock:
            while sent and now - sent[0][1] > ECHO_S:
                sent.popleft()
            for i, (mine, _) in enumerate(sent):
                if mine == text:
                    del sent[i]
                    return True
        return False

    def _relay(self, signal):
        return lambda value: self._emit(signal, value)

    def _on_sources(self, text: str) -> None:
        try:
            items = json.loads(text)
        except ValueError:
            log.warning('unreadable /robot_reply_sources: %.80r', text)
            return
        self._emit(self.sources, [s for s in items if isinstance(s, dict)]
                   if isinstance(items, list) else [])

    def _on_utterance(self, text: str) -> None:
        if not self._is_echo(self._sent, text) and text.strip():
            self._emit(self.heard, text)

    def _on_session(self, user: str) -> None:
        user = user.strip()
        if user and not self._is_echo(self._sent_users, user):
            self.user = user
            self._emit(self.user_switched, user)
