"""The caregiver command protocol, and the chat node's desk that answers it.

The console publishes a request on `caregiver_command` (std_msgs/String, JSON):
    {"id": "<request id>", "action": "child.delete", "args": {"user": "mina"}}
and the chat node answers on `caregiver_command_result`:
    {"id": "<request id>", "ok": true, "final": true, "result": {...}}
    {"id": "<request id>", "ok": false, "final": true, "error": "<one line>"}
A long action (knowledge.ingest) first sends progress answers with "final": false:
    {"id": "<request id>", "ok": true, "final": false, "progress": {"done": 1, "total": 3, ...}}
The chat node owns every file these actions change; the console only asks.
"""

from contextlib import nullcontext
import datetime as dt
import json
import logging
from pathlib import Path
import time
from typing import Callable, Optional
import uuid

from kidscare_llm.core.caregiver import data
from kidscare_llm.core.caregiver.actions import CaregiverActions, CommandError
from kidscare_llm.core.caregiver.knowledge import KnowledgeDesk
from kidscare_llm.core.caregiver.persona import PersonaDesk
from kidscare_llm.core.caregiver.rules import LINES, RuleBook
from kidscare_llm.core.caregiver.usage import day_start, talk_seconds
from kidscare_llm.core.chat.inputs import clean_utterance
from kidscare_llm.core.chat.reply import Reply
from kidscare_llm.core.errors import KidscareError

log = logging.getLogger(__name__)
COMMAND_TOPIC = 'caregiver_command'
RESULT_TOPIC = 'caregiver_command_result'
DAY_S = 86400.0
NOTED = ('answer', 'safety', 'rules')  # reply kinds stored in the session (others are not)
PROGRESSIVE = ('knowledge.ingest',)  # actions that send progress answers before the last
# Actions that run beside replies, not between them (the knowledge base locks what it shares):
# a child is answered while a parent's 40-page PDF is read.
BESIDE_REPLIES = ('knowledge.ingest', 'knowledge.list', 'knowledge.status')


def make_request(action: str, **args) -> dict:
    """Return a request with a fresh id (the console publishes json.dumps of it)."""
    return {'id': uuid.uuid4().hex, 'action': action, 'args': args}


class CaregiverDesk(CaregiverActions):
    """What the chat node does for a caregiver: rules before a reply, and every command."""

    def __init__(self, engine, quiet_hours: str, daily_limit_min: int, retention_days: int,
                 clock: Callable[[], float] = time.time):
        self.engine = engine
        store = getattr(engine, 'store', None)
        self.data_dir: Optional[Path] = Path(store.path).parent if store is not None else None
        rules_path = self.data_dir / 'caregiver' / 'rules.json' if self.data_dir else None
        self.rules = RuleBook(rules_path, quiet_hours, daily_limit_min)
        self.retention_days = retention_days
        self.clock = clock
        self._retention_at = float('-inf')
        self.knowledge = KnowledgeDesk(engine, self.data_dir)
        if getattr(engine, 'recall', None) is not None:  # memory may be off for one child
            engine.recall.remembers = self.rules.remembers
        engine.strict_for = self.rules.strict  # stricter safety for one child
        engine.alert_also = self.rules.alerts_also  # categories a caregiver asked alerts for
        self.persona = PersonaDesk(engine, self.data_dir)

    @property
    def alerts_path(self) -> Path:
        """The chat node's alerts.jsonl."""
        return self.data_dir / 'alerts.jsonl'

    # -- rules before a reply ----------------------------------------------------------------
    def gate(self, user: str, text: str,
             on_sentence: Optional[Callable[[str], None]] = None) -> Optional[Reply]:
        """Answer with a kind line instead of the model when a rule says not to talk now.

        Return None when the robot may answer. A refused turn is stored like any other (the
        caregiver sees it in the transcript) and logged; nothing is generated.
        """
        rule = self.rules.effective(user)
        if not rule.quiet and not rule.limit_min:
            return None
        try:
            text = clean_utterance(text, self.engine.options.max_utterance_chars)
        except KidscareError:
            return None  # empty or too long: the engine's own answer
        now = dt.datetime.fromtimestamp(self.clock())
        store = self.engine.store
        minutes = talk_seconds(store.message_times(user, day_start(now.date()))) / 60.0
        key = self.rules.verdict(user, now, minutes)
        if key is None:
            return None
        persona = self.engine.persona
        line = persona.lines.get(key) or LINES.get(persona.language, LINES['ko'])[key]
        session_id = store.current(user)
        store.add(session_id, 'user', text)
        store.add(session_id, 'assistant', line)
        self.engine.backend.forget(session_id)  # the KV snapshot no longer matches the history
        log.info('user %s: %s (%.0f min today), answered without the model', user, key, minutes)
        if on_sentence:
            on_sentence(line)
        return Reply(line, session_id, kind='rules', sentences=[line])

    def reply(self, user: str, text: str, **callbacks) -> Reply:
        """Answer one utterance: the caregiver's rules first, else the engine (same callbacks).

        The reply's kind and sources are noted beside its message, for the transcripts. With
        the child's voice switched off no sentence goes out to be spoken (the reply is text).
        """
        if not self.rules.speaks(user):
            callbacks = dict(callbacks, on_sentence=None)
        reply = self.gate(user, text, callbacks.get('on_sentence')) or \
            self.engine.reply(user, text, **callbacks)
        if reply.kind in NOTED:
            try:
                self.engine.store.note_reply(reply.session_id, reply.kind,
                                             json.dumps(reply.sources, ensure_ascii=False))
            except Exception as exc:  # the child has the answer; the note is for adults
                log.error('could not note the reply of %s: %s', user, exc)
        return reply

    def maintain(self) -> Optional[dict]:
        """Apply the retention when it last ran a day ago or more (at start-up, then daily)."""
        now = self.clock()
        if self.data_dir is None or now - self._retention_at < DAY_S:
            return None
        self._retention_at = now
        return data.apply_retention(self.engine.store, self.alerts_path, self.engine.backend,
                                    self.retention_days, now)

    # -- commands ---------------------------------------------------------------------------
    def handle(self, text: str, progress: Optional[Callable[[dict], None]] = None,
               lock=None) -> dict:
        """Do one JSON request and return its answer; never raises (an error is an answer).

        lock (the chat node's engine lock) is held while the action runs, unless the action
        runs beside replies (BESIDE_REPLIES).
        """
        request_id = None
        try:
            request = json.loads(text)
            request_id = request.get('id')
            action, args = request['action'], request.get('args') or {}
            method = getattr(self, 'do_' + str(action).replace('.', '_'), None)
            if method is None or not isinstance(args, dict):
                raise CommandError(f'unknown action {action!r}')
            if action in PROGRESSIVE:
                def step(state: dict) -> None:
                    if progress is not None:
                        progress({'id': request_id, 'ok': True, 'final': False,
                                  'progress': state})
                args = dict(args, progress=step)
            guard = lock if lock is not None and action not in BESIDE_REPLIES else nullcontext()
            with guard:
                result = method(**args)
            return {'id': request_id, 'ok': True, 'final': True, 'result': result}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return self._error(request_id, f'bad request: {type(exc).__name__}: {exc}')
        except KidscareError as exc:
            return self._error(request_id, str(exc))
        except Exception as exc:  # an answer, never a dead node
            log.exception('caregiver command failed')
            return self._error(request_id, f'{type(exc).__name__}: {exc}')

    @staticmethod
    def _error(request_id, message: str) -> dict:
        log.warning('caregiver command refused: %s', message)
        return {'id': request_id, 'ok': False, 'final': True, 'error': message}
