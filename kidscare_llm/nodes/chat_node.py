"""Chat node: /user_utterance in, /robot_reply_partial sentences and /robot_reply out.

Topics: sub user_utterance, ~/session (user id); pub robot_reply, robot_reply_partial,
robot_reply_stream (the text as it is generated, batched every chat.stream_interval_ms),
robot_reply_sources (JSON citations of the passages used, sent just before robot_reply),
caregiver_alert (JSON: time, user, session, category, utterance; crisis, abuse, personal info).
Caregiver commands (JSON requests on caregiver_command, answers on caregiver_command_result:
core/caregiver/commands.py) run on their own thread between replies (knowledge ingestion beside
them); the caregiver's rules (quiet hours, daily limit, switches) are applied before each
reply, and the retention daily.
Services (std_srvs/Trigger): ~/reset_session, ~/cancel, ~/reindex, ~/describe (JSON: model,
backend, user, session).
Generation runs on a worker thread; utterances that arrive meanwhile wait in a bounded queue,
and one that finds the queue full is answered "busy" on robot_reply rather than dropped
silently (spoken on robot_reply_partial at most once per BUSY_SPOKEN_EVERY_S).
"""

import json
import logging
import queue
import sys
import threading
import time
from typing import Callable, Optional

from kidscare_llm.core.build import apply_live, build_engine
from kidscare_llm.core.caregiver.commands import CaregiverDesk, COMMAND_TOPIC, RESULT_TOPIC
from kidscare_llm.core.chat.chunker import PieceBatcher
from kidscare_llm.core.chat.inputs import clean_user
from kidscare_llm.core.errors import EmptyUtterance, InputError
from kidscare_llm.core.settings import CHAT_NODE
from kidscare_llm.nodes.runner import run_node
from kidscare_llm.transport import DEEP, KEEP_ALL, MSG_STRING, Transport

log = logging.getLogger('kidscare_llm.chat_node')

BUSY_SPOKEN_EVERY_S = 5.0  # a flood of utterances must not become a flood of speech
BUSY_LOG_EVERY_S = 2.0
MAINTAIN_EVERY_S = 3600.0  # how often the caregiver thread checks whether retention is due


class ChatNode:
    """Wires a ChatEngine to topics and services; owns the generation worker thread."""

    def __init__(self, transport: Transport, engine_factory: Callable = build_engine):
        self.transport = transport
        params = transport.parameters(CHAT_NODE)
        self.engine = engine_factory(params)
        self.user = params['chat.default_user']
        self.warm_start = params['memory.warm_start']
        self.cancel = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, params['chat.queue_size']))
        # Utterances are never overwritten in our history (KEEP_ALL: a flood slows its publisher
        # down instead of losing messages); answers keep a DEEP history that never blocks us.
        # The token stream may drop pieces.
        self.publish_reply = transport.publisher('robot_reply', MSG_STRING, DEEP)
        self.publish_partial = transport.publisher('robot_reply_partial', MSG_STRING, DEEP)
        self.publish_sources = transport.publisher('robot_reply_sources', MSG_STRING, DEEP)
        publish_alert = transport.publisher('caregiver_alert', MSG_STRING, DEEP)
        self.engine.on_alert = lambda alert: publish_alert(json.dumps(alert, ensure_ascii=False))
        self.publish_stream: Optional[Callable[[str], None]] = None
        if params['chat.stream_tokens']:
            self.publish_stream = transport.publisher('robot_reply_stream', MSG_STRING)
        self.stream_interval_s = params['chat.stream_interval_ms'] / 1000.0
        self.desk = CaregiverDesk(self.engine, params['rules.quiet_hours'],
                                  params['rules.daily_limit_min'], params['retention.days'])
        self._engine_lock = threading.Lock()  # a command waits for the reply in progress
        self._commands: queue.Queue = queue.Queue()
        self.publish_result = transport.publisher(RESULT_TOPIC, MSG_STRING, DEEP)
        transport.subscribe(COMMAND_TOPIC, MSG_STRING, self._commands.put, KEEP_ALL)
        transport.subscribe('user_utterance', MSG_STRING, self.on_utterance, KEEP_ALL)
        transport.subscribe('~/session', MSG_STRING, self.on_session)
        transport.serve_trigger('~/reset_session', self.on_reset)
        transport.serve_trigger('~/cancel', self.on_cancel)
        transport.serve_trigger('~/reindex', self.on_reindex)
        transport.serve_trigger('~/describe', self.on_describe)
        transport.on_parameter_change(self.on_parameters)
        self._busy = threading.Condition()
        self._busy_owed, self._busy_latest, self._closing = 0, '', False
        self._busy_thread = threading.Thread(target=self._answer_busy, name='chat-busy',
                                             daemon=True)
        self._busy_thread.start()
        self._worker = threading.Thread(target=self._work, name='chat-worker', daemon=True)
        self._worker.start()
        self._desk_thread = threading.Thread(target=self._serve_caregiver, name='chat-caregiver',
                                             daemon=True)
        self._desk_thread.start()
        log.info('chat node ready: %s; user %s in session %s', self.engine.describe(), self.user,
                 self.engine.session(self.user))

    def on_utterance(self, text: str) -> None:
        """Queue an utterance for the current user; owe it a 'busy' answer when the queue is full.

        Nothing is published here: on DDS this runs on the receive thread, which must stay free
        to process the acknowledgements a reliable write may wait for.
        """
        if not text.strip():
            log.info('ignored an empty utterance')
            return
        try:
            self._queue.put_nowait((self.user, text))
        except queue.Full:
            with self._busy:
                self._busy_owed += 1
                self._busy_latest = text
                self._busy.notify()

    def _answer_busy(self) -> None:
        """Publish the owed 'busy' answers on robot_reply; speak and log them at a bounded rate.

        Runs on its own thread until close(); a failed write is logged and the loop goes on.
        """
        spoken = logged = float('-inf')
        unlogged = 0
        while True:
            with self._busy:
                self._busy.wait_for(lambda: self._busy_owed or self._closing)
                if self._closing:
                    return
                owed, self._busy_owed, latest = self._busy_owed, 0, self._busy_latest
            now = time.monotonic()
            unlogged += owed
            if now - logged >= BUSY_LOG_EVERY_S:
                log.warning('queue full (%d waiting): answered busy to %d utterance(s), latest '
                            '%.40r', self._queue.qsize(), unlogged, latest)
                logged, unlogged = now, 0
            try:
                if now - spoken >= BUSY_SPOKEN_EVERY_S:
                    spoken = now
                    self.publish_partial(self.engine.persona.line('busy'))
                for _ in range(owed):
                    self.publish_reply(self.engine.persona.line('busy'))
            except Exception as exc:  # a failed write must not end the busy answers
                log.error('busy answer failed: %s', exc)

    def on_session(self, user: str) -> None:
        """Switch the current speaker; each user keeps their own history."""
        try:
            user = clean_user(user)
        except InputError as exc:
            log.warning('ignored a session switch: %s', exc)
            return
        if user != self.user:
            self.user = user
            log.info('now talking with %s (session %s)', user, self.engine.session(user))

    def on_reset(self):
        """Start a new session for the current user (the old one is kept)."""
        session_id = self.engine.reset(self.user)
        return True, json.dumps({'user': self.user, 'session': session_id}, ensure_ascii=False)

    def on_parameters(self, changes: dict) -> None:
        """Apply live parameters (ros2 param set); raises, and so refuses, on a bad set."""
        apply_live(self.engine, changes)
        if 'chat.stream_interval_ms' in changes:
            self.stream_interval_s = changes['chat.stream_interval_ms'] / 1000.0

    def on_cancel(self):
        """Stop the reply being generated at its next token."""
        busy = self._queue.unfinished_tasks > 0
        self.cancel.set()
        return True, 'cancelled' if busy else 'nothing to cancel'

    def on_reindex(self):
        """Re-ingest the knowledge sources without restarting (changed files only)."""
        return True, self.engine.reindex()

    def on_describe(self):
        """Say which model and backend answer, who is talking, how far embedding got."""
        kb = self.engine.knowledge
        return True, json.dumps({'model': self.engine.describe(),
                                 'backend': self.engine.backend.kind,
                                 'user': self.user, 'session': self.engine.session(self.user),
                                 'embedded': kb.embedding_status() if kb else None},
                                ensure_ascii=False)

    def _serve_caregiver(self) -> None:
        """Answer caregiver commands one at a time, between replies; apply retention daily."""
        text = ''  # the retention at start-up
        while True:
            if text is None:
                return
            try:
                if text:  # under the engine lock, unless it runs beside replies (ingestion)
                    self._publish_result(self.desk.handle(text, progress=self._publish_result,
                                                          lock=self._engine_lock))
                with self._engine_lock:
                    self.desk.maintain()
            except Exception as exc:  # never let one command stop the caregiver thread
                log.exception('caregiver command failed: %s', exc)
            try:
                text = self._commands.get(timeout=MAINTAIN_EVERY_S)
            except queue.Empty:
                text = ''

    def _publish_result(self, answer: dict) -> None:
        self.publish_result(json.dumps(answer, ensure_ascii=False))

    def _work(self) -> None:
        if self.warm_start:  # on this thread: the one that generates (see ChatEngine.warm)
            log.info('persona prefix evaluated: %d tokens', self.engine.warm())
        while True:
            if self._queue.empty():
                self.engine.checkpoint()  # idle: snapshot now, so a switch will not wait
            item = self._queue.get()
            if item is None:
                return
            user, text = item
            self.cancel.clear()
            stream = PieceBatcher(self.publish_stream, self.stream_interval_s) \
                if self.publish_stream else None
            try:
                with self._engine_lock:
                    reply = self.desk.reply(user, text, on_piece=stream and stream.add,
                                            on_sentence=self.publish_partial, cancel=self.cancel)
                if stream:
                    stream.flush()
                self.publish_sources(json.dumps(reply.sources, ensure_ascii=False))
                self.publish_reply(reply.text)
            except EmptyUtterance:
                log.info('ignored an empty utterance')
            except Exception as exc:  # never let one utterance stop the worker
                log.exception('reply failed: %s', exc)
                self.publish_reply(self.engine.persona.line('error'))
            finally:
                self._queue.task_done()

    def close(self) -> None:
        """Stop the worker after the current reply."""
        with self._busy:
            self._closing = True
            self._busy.notify()
        self.cancel.set()
        self._queue.put(None)
        self._commands.put(None)
        self._worker.join(timeout=5.0)
        self._desk_thread.join(timeout=5.0)
        self.engine.close()


def run(transport_name: Optional[str] = None, args=(), **transport_options) -> int:
    """Run the chat node until Ctrl-C; 1 with one clear line on a configuration error."""
    return run_node(CHAT_NODE, ChatNode, transport_name, args, **transport_options)


def main(args=None) -> int:
    """Entry point of `ros2 run kidscare_llm chat_node` (Humble and Jazzy) and of chat_node."""
    return run(args=sys.argv if args is None else args)


if __name__ == '__main__':
    sys.exit(main())
