"""The chat engine: one utterance in, a streamed reply out, history kept per session.

`ChatEngine` is handed its parts (core/build.py assembles them from parameters): a backend,
the persona, the session store, optionally the knowledge base, child memory and the safety
checker, plus an `EngineOptions`. Options that may change while the robot runs (sampling,
rag.top_k) are replaced as a whole by `update()`, so a reply in progress sees either the old or
the new set. What the child said before and knowledge passages come from `Recall`.
"""

from dataclasses import dataclass, replace
import functools
import logging
from pathlib import Path
import threading
from typing import Callable, Optional, Tuple

from kidscare_llm.core.chat.alerts import AlertLog
from kidscare_llm.core.chat.answers import FixedAnswers
from kidscare_llm.core.chat.generation import ReplyGenerator
from kidscare_llm.core.chat.inputs import clean_utterance
from kidscare_llm.core.chat.persona import Persona
from kidscare_llm.core.chat.prompt import MESSAGE_OVERHEAD, plan_prompt
from kidscare_llm.core.chat.recall import Recall
from kidscare_llm.core.chat.reply import Reply
from kidscare_llm.core.chat.sessions import SessionStore, StoredMessage
from kidscare_llm.core.chat.summary import summarize
from kidscare_llm.core.errors import ConfigError, OversizedUtterance
from kidscare_llm.core.llm.base import Backend, Sampling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptions:
    """The engine's settings, taken from the node parameters by core/build.py (no defaults)."""

    sampling: Sampling
    max_utterance_chars: int
    inline_informations: bool
    top_k: int
    memory_top_k: int
    context_tokens: int
    summarize: bool
    check_output: bool
    sources: Tuple[Path, ...] = ()


class ChatEngine:
    """Persona + per-session history + streaming model, behind one reply() call."""

    def __init__(self, backend: Backend, persona: Persona, store: SessionStore,
                 options: EngineOptions, knowledge=None, safety=None,
                 alerts: Optional[AlertLog] = None, memory=None):
        self.backend = backend
        self.persona = persona
        self.store = store
        self.safety = safety  # core.safety.SafetyChecker, or None (safety.enabled: false)
        self.alerts = alerts or AlertLog()
        # a caregiver's switches (CaregiverDesk sets them from its rule book)
        self.strict_for: Callable[[str], bool] = lambda user: False  # stricter safety
        self.alert_also: Callable[[str], bool] = lambda category: False  # more alerts
        recovered = store.recover()
        if recovered:
            log.warning('%d turn(s) were cut off by an earlier crash: kept in the database, '
                        'marked interrupted, left out of the prompt', recovered)
        self.system_prompt = persona.system_prompt(options.inline_informations)
        self._count = functools.lru_cache(maxsize=8192)(backend.count_tokens)
        self.recall = Recall(self._count, knowledge, memory, safety)
        self.options = options
        self.budget = self._budget(options)
        self._speaker = ReplyGenerator(self)
        self._fixed = FixedAnswers(self)

    def _budget(self, options: EngineOptions) -> int:
        """Return the prompt budget (n_ctx minus the reply); refuse a persona over half of it."""
        budget = self.backend.n_ctx - options.sampling.max_tokens
        system_tokens = self._count(self.system_prompt) + MESSAGE_OVERHEAD
        if system_tokens > budget // 2:
            raise ConfigError(f'the persona takes {system_tokens} tokens, over half of the '
                              f'{budget} left by n_ctx={self.backend.n_ctx} minus '
                              f'max_tokens={options.sampling.max_tokens}: raise model.n_ctx or '
                              'shorten it')
        return budget

    def set_persona(self, persona: Persona) -> None:
        """Answer with another persona from the next reply on (the caregiver console's edit).

        Checked first (over half the budget is refused, nothing changes); every session's KV
        snapshot is dropped, since it starts with the old system prompt.
        """
        system_prompt = persona.system_prompt(self.options.inline_informations)
        old = self.persona, self.system_prompt
        self.persona, self.system_prompt = persona, system_prompt
        try:
            self.budget = self._budget(self.options)
        except ConfigError:
            self.persona, self.system_prompt = old
            raise
        for session in self.store.sessions():
            self.backend.forget(session)

    def update(self, **changes) -> EngineOptions:
        """Replace options while running (e.g. sampling=..., top_k=...); validated first."""
        options = replace(self.options, **changes)
        self.budget = self._budget(options)
        self.options = options
        return options

    @property
    def knowledge(self):
        """The knowledge base (core.rag.knowledge.KnowledgeBase), or None: rag is off."""
        return self.recall.knowledge

    @knowledge.setter
    def knowledge(self, knowledge) -> None:
        self.recall.knowledge = knowledge

    @property
    def memory(self):
        """Return the ChildMemory (core/memory/child_memory.py), or None when it is off."""
        return self.recall.memory

    @property
    def on_alert(self) -> Optional[Callable[[dict], None]]:
        """Where caregiver alerts go besides the alerts file (the node publishes them)."""
        return self.alerts.on_alert

    @on_alert.setter
    def on_alert(self, hook: Optional[Callable[[dict], None]]) -> None:
        self.alerts.on_alert = hook

    def describe(self) -> str:
        """Say which model and backend answer."""
        return self.backend.describe()

    def session(self, user: str) -> str:
        """Return the user's current session id."""
        return self.store.current(user)

    def warm(self) -> int:
        """Evaluate the persona once at start-up (llama.cpp); return the tokens evaluated.

        Call it on the thread that will generate: llama.cpp's OpenMP keeps a thread team per
        calling thread, and a second, idle team halves decode speed on a small CPU.
        """
        return self.backend.warm(self.system_prompt)

    def checkpoint(self) -> None:
        """Use idle time to snapshot the current session's KV cache (llama.cpp)."""
        self.backend.checkpoint()

    def reset(self, user: str) -> str:
        """Start a new session for the user; the old one stays in the store."""
        self.backend.forget(self.store.current(user))
        session_id = self.store.reset(user)
        log.info('user %s: new session %s', user, session_id)
        return session_id

    def reply(self, user: str, text: str, on_piece: Optional[Callable[[str], None]] = None,
              on_sentence: Optional[Callable[[str], None]] = None,
              cancel: Optional[threading.Event] = None) -> Reply:
        """Answer one utterance of a user, streaming pieces and sentences through callbacks.

        Raises EmptyUtterance (nothing to answer); every other failure becomes a spoken reply.
        """
        options = self.options  # one consistent set for the whole reply
        session_id = self.store.current(user)
        try:
            text = clean_utterance(text, options.max_utterance_chars)
        except OversizedUtterance as exc:
            log.warning('user %s: %s; refused', user, exc)
            return self._fixed.line(session_id, 'too_long', 'refused', on_sentence)
        verdict = None
        if self.safety is not None:  # before retrieval and generation
            verdict = self.safety.check_input(text, strict=self.strict_for(user))
            # patterns over turns and days (grooming, low mood, the same bully): their own alerts
            self.safety.conversation.watch(user, session_id, text, verdict, self.store,
                                           self.alerts)
            if verdict.flagged:
                return self._fixed.safe(user, session_id, text, verdict, on_sentence)
        message_id = self.store.add(session_id, 'user', text)
        history = self.store.history(session_id)
        retrieved = self.recall.gather(user, text, options.top_k, options.memory_top_k,
                                       options.context_tokens)
        if retrieved.message != text:  # context rides in the newest user turn, never the system
            history[-1] = StoredMessage(message_id, 'user', retrieved.message)
        plan = plan_prompt(self._system(session_id, options), history, self._count, self.budget)
        if plan.dropped:
            self.store.set_window_start(session_id, plan.window_start)
            self.backend.forget(session_id)  # its KV snapshot no longer matches the prompt
            log.info('session %s: dropped the %d oldest messages to stay within n_ctx=%d',
                     session_id, plan.dropped, self.backend.n_ctx)
        dropped = plan.dropped
        if dropped and options.summarize:  # the persona grows by the summary: plan once more
            summarize(self.backend, self.store, self.persona, session_id, history[:dropped])
            plan = plan_prompt(self._system(session_id, options), history[dropped:],
                               self._count, self.budget)
        reply = Reply('', session_id, prompt_tokens=plan.prompt_tokens,
                      dropped_messages=dropped,
                      sources=[m.citation() for m in retrieved.memories]
                      + [p.citation() for p in retrieved.passages])
        try:
            self._speaker.generate(reply, plan.messages, text, options, on_piece, on_sentence,
                                   cancel)
        finally:  # what the child said is remembered whatever became of the reply
            self.recall.remember(user, text, session_id, message_id, verdict)
        reply.prompt_evaluated = self.backend.prompt_evaluated
        return reply

    def _system(self, session_id: str, options: EngineOptions) -> str:
        """Return the persona, then (memory.summarize) what the dropped turns said."""
        summary = self.store.summary(session_id) if options.summarize else ''
        if not summary:
            return self.system_prompt
        return f'{self.system_prompt}\n\n{self.persona.line("summary_header")}\n{summary}'

    def reindex(self) -> str:
        """Re-ingest rag.sources (changed files only, vanished ones dropped); return a summary."""
        if self.knowledge is None:
            return 'retrieval is disabled (rag.enabled: false)'
        if not self.options.sources:
            return 'rag.sources is empty: nothing to index'
        return self.knowledge.ingest(self.options.sources, delete_missing=True).summary()

    def close(self) -> None:
        """Release the knowledge base and the model now, not at interpreter exit.

        Native libraries (Kiwi, Chroma, llama.cpp) abort the process when their threads are
        torn down during interpreter finalization after ROS has shut down.
        """
        if self.knowledge is not None:
            self.knowledge.close()
        if self.memory is not None:
            self.memory.close()
        self.recall.knowledge = self.recall.memory = self.backend = None
        self.store.close()
