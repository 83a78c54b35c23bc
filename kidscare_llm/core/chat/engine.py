"""The chat engine: one utterance in, a streamed reply out, history kept per session."""

from dataclasses import dataclass, field
import functools
import json
import logging
import os
from pathlib import Path
import re
import threading
import time
from typing import Any, Callable, List, Mapping, Optional, Sequence
from urllib.parse import urlparse

from kidscare_llm.core import paths
from kidscare_llm.core.chat.chunker import SentenceChunker
from kidscare_llm.core.errors import (ConfigError, EmptyUtterance, InputError, LLMError,
                                      OversizedUtterance)
from kidscare_llm.core.llm.backends import LlamaCppBackend, OpenAIBackend, Sampling
from kidscare_llm.core.llm.models import resolve_model
from kidscare_llm.core.chat.persona import load_persona, Persona
from kidscare_llm.core.chat.prompt import MESSAGE_OVERHEAD, plan_prompt
from kidscare_llm.core.rag.context import build_knowledge_base, Retrieved, source_paths, with_context
from kidscare_llm.core.chat.sessions import SessionStore, StoredMessage

log = logging.getLogger(__name__)

SUMMARY_HEADER = '지난 대화 요약:'
SUMMARY_INSTRUCTION = ('다음 대화를 세 문장 이내로 요약해. 아이의 이름, 좋아하는 것, 약속, 중요한 '
                       '사실만 남겨.')

# What the robot says when it cannot answer normally: short, warm, spoken Korean.
SPOKEN = {
    'too_long': '말이 너무 길어서 다 듣지 못했어. 조금 짧게 다시 말해 줄래?',
    'error': '미안해, 지금은 대답하기가 어려워. 잠시 뒤에 다시 말해 줄래?',
    'busy': '잠깐만! 앞의 이야기에 먼저 대답하고 있어. 조금 있다가 다시 말해 줄래?',
    'empty': '음, 뭐라고 대답할지 모르겠어. 다시 한 번 말해 줄래?',
}


@dataclass
class Reply:
    """A finished reply: its text, the session it belongs to, and how it ended."""

    text: str
    session_id: str
    kind: str = 'answer'  # answer | refused | error
    interrupted: bool = False
    sentences: List[str] = field(default_factory=list)
    pieces: int = 0
    prompt_tokens: int = 0
    dropped_messages: int = 0
    sources: List[dict] = field(default_factory=list)
    prompt_evaluated: Optional[int] = None  # prompt tokens the model had to run (llama.cpp)


# C0/C1 control characters other than tab and newline, and DEL: noise from a serial line or a
# bad STT; they would reach the prompt and the database otherwise.
_CONTROL = re.compile('[\x00-\x08\x0b-\x1f\x7f-\x9f]')
MAX_USER_CHARS = 64


def _valid_unicode(text: str) -> str:
    """Replace lone surrogates (undecodable bytes of a terminal or file) with U+FFFD."""
    return text.encode('utf-8', 'surrogatepass').decode('utf-8', 'replace')


def clean_utterance(text: str, max_chars: int) -> str:
    """Return the utterance stripped of control characters; raise EmptyUtterance or Oversized."""
    text = _CONTROL.sub('', _valid_unicode(text or '')).strip()
    if not text:
        raise EmptyUtterance('empty utterance')
    if len(text) > max_chars:
        raise OversizedUtterance(f'utterance of {len(text)} characters is over '
                                 f'chat.max_utterance_chars={max_chars}')
    return text


class _Either:
    """Looks like one threading.Event that is set when either of two is (cancel or unsafe)."""

    def __init__(self, first: Optional[threading.Event], second: threading.Event):
        self._events = [e for e in (first, second) if e is not None]

    def is_set(self) -> bool:
        """Return True when any of the events is set."""
        return any(e.is_set() for e in self._events)


def _language(text: str) -> str:
    """Return 'en' for a mostly-Latin utterance, else 'ko' (the safe line's language)."""
    from kidscare_llm.core.safety.checker import language_of
    return language_of(text)


def clean_user(user: str) -> str:
    """Return a user id fit to name a session: no control characters, at most 64 characters.

    Ids are only ever SQL values and hashed file names, so path characters are harmless and
    kept; an id that is empty once cleaned raises InputError.
    """
    cleaned = _CONTROL.sub('', _valid_unicode(user or '')).strip()[:MAX_USER_CHARS]
    if not cleaned:
        raise InputError(f'user id {user!r} is empty once control characters are removed')
    return cleaned


class ChatEngine:
    """Persona + per-session history + streaming model, behind one reply() call."""

    def __init__(self, backend, persona: Persona, store: SessionStore, sampling: Sampling,
                 max_utterance_chars: int = 1000, inline_informations: bool = True,
                 knowledge=None, top_k: int = 3, context_tokens: int = 600,
                 sources: Sequence[Path] = (), summarize: bool = False, safety=None,
                 alerts_file: Optional[Path] = None, check_output: bool = True):
        self.backend = backend
        self.safety = safety  # core.safety.SafetyChecker, or None (safety.enabled: false)
        self.check_output = check_output
        self.alerts_file = alerts_file
        self.on_alert: Optional[Callable[[dict], None]] = None  # the node publishes it
        self.summarize = summarize
        self.store = store
        recovered = store.recover()
        if recovered:
            log.warning('%d turn(s) were cut off by an earlier crash: kept in the database, '
                        'marked interrupted, left out of the prompt', recovered)
        self.knowledge = knowledge
        self.top_k, self.context_tokens = top_k, context_tokens
        self.knowledge_sources = list(sources)
        self.sampling = sampling
        self.max_utterance_chars = max_utterance_chars
        self.system_prompt = persona.system_prompt(inline_informations)
        self._count = functools.lru_cache(maxsize=8192)(backend.count_tokens)
        self.budget = backend.n_ctx - sampling.max_tokens
        system_tokens = self._count(self.system_prompt) + MESSAGE_OVERHEAD
        if system_tokens > self.budget // 2:
            raise ConfigError(f'the persona takes {system_tokens} tokens, over half of the '
                              f'{self.budget} left by n_ctx={backend.n_ctx} minus '
                              f'max_tokens={sampling.max_tokens}: raise model.n_ctx or shorten it')

    def describe(self) -> str:
        """Say which model and backend answer."""
        return self.backend.describe()

    def session(self, user: str) -> str:
        """Return the user's current session id."""
        return self.store.current(user)

    def _forget(self, session_id: str) -> None:
        forget = getattr(self.backend, 'forget', None)
        if forget is not None:
            forget(session_id)

    def warm(self) -> int:
        """Evaluate the persona once at start-up (llama.cpp); return the tokens evaluated.

        Call it on the thread that will generate: llama.cpp's OpenMP keeps a thread team per
        calling thread, and a second, idle team halves decode speed on a small CPU.
        """
        warm = getattr(self.backend, 'warm', None)
        return warm(self.system_prompt) if warm is not None else 0

    def checkpoint(self) -> None:
        """Use idle time to snapshot the current session's KV cache (llama.cpp)."""
        checkpoint = getattr(self.backend, 'checkpoint', None)
        if checkpoint is not None:
            checkpoint()

    def reset(self, user: str) -> str:
        """Start a new session for the user; the old one stays in the store."""
        self._forget(self.store.current(user))
        session_id = self.store.reset(user)
        log.info('user %s: new session %s', user, session_id)
        return session_id

    def reply(self, user: str, text: str, on_piece: Optional[Callable[[str], None]] = None,
              on_sentence: Optional[Callable[[str], None]] = None,
              cancel: Optional[threading.Event] = None) -> Reply:
        """Answer one utterance of a user, streaming pieces and sentences through callbacks.

        Raises EmptyUtterance (nothing to answer); every other failure becomes a spoken reply.
        """
        session_id = self.store.current(user)
        try:
            text = clean_utterance(text, self.max_utterance_chars)
        except OversizedUtterance as exc:
            log.warning('user %s: %s; refused', user, exc)
            return self._canned(session_id, 'too_long', 'refused', on_sentence)
        if self.safety is not None:  # before retrieval and generation
            verdict = self.safety.check_input(text)
            if verdict.flagged:
                return self._safe_reply(user, session_id, text, verdict, on_sentence)
        message_id = self.store.add(session_id, 'user', text)
        history = self.store.history(session_id)
        retrieved = self._retrieve(text)
        if retrieved.passages:  # passages ride in the newest user turn, never the system prompt
            history[-1] = StoredMessage(message_id, 'user', retrieved.message)
        system = self._system(session_id)
        plan = plan_prompt(system, history, self._count, self.budget)
        if plan.dropped:
            self.store.set_window_start(session_id, plan.window_start)
            self._forget(session_id)  # its KV snapshot no longer matches the prompt
            log.info('session %s: dropped the %d oldest messages to stay within n_ctx=%d',
                     session_id, plan.dropped, self.backend.n_ctx)
        dropped = plan.dropped
        if dropped and self.summarize:  # the persona grows by the summary: plan once more
            self._summarize(session_id, history[:dropped])
            plan = plan_prompt(self._system(session_id), history[dropped:], self._count,
                               self.budget)
        reply = Reply('', session_id, prompt_tokens=plan.prompt_tokens,
                      dropped_messages=dropped,
                      sources=[p.citation() for p in retrieved.passages])
        chunker = SentenceChunker()
        parts: List[str] = []
        unsafe = threading.Event()  # set by the output check: the model stops at once
        stop = _Either(cancel, unsafe)

        def emit(sentences: List[str]) -> None:
            for sentence in sentences:
                if unsafe.is_set():
                    return
                if self.safety is not None and self.check_output:
                    verdict = self.safety.check_output(sentence)
                    if verdict.flagged:  # never spoken: replaced, and generation stops
                        unsafe.set()
                        log.warning('session %s: unsafe sentence replaced (%s): %.80r',
                                    session_id, verdict.reason, sentence)
                        sentence = self.safety.reply_for(verdict, _language(text))
                        reply.kind = 'safety'
                reply.sentences.append(sentence)
                if on_sentence:
                    on_sentence(sentence)

        try:
            for piece in self.backend.stream(plan.messages, self.sampling, stop, session_id):
                if unsafe.is_set():
                    break
                parts.append(piece)
                reply.pieces += 1
                if on_piece:
                    on_piece(piece)
                emit(chunker.feed(piece))
        except LLMError as exc:
            log.error('session %s: %s', session_id, exc)
            reply.kind = 'error'
        reply.interrupted = bool(cancel is not None and cancel.is_set())
        if not reply.interrupted:  # a cut-off fragment is stored, never spoken
            emit(chunker.flush())
        raw = ''.join(parts)  # stored as generated, so the next prompt matches the KV cache
        reply.text = raw.strip()
        if unsafe.is_set():  # store and send what was spoken, not what the model wrote
            raw = reply.text = ' '.join(reply.sentences)
        elif self.safety is not None and self.check_output and reply.text:
            verdict = self.safety.check_output(reply.text)  # what no single sentence showed
            if verdict.flagged:
                log.warning('session %s: unsafe reply replaced (%s)', session_id, verdict.reason)
                raw = reply.text = self.safety.reply_for(verdict, _language(text))
                reply.kind = 'safety'
        if reply.kind == 'safety':
            self._forget(session_id)  # the KV cache holds the unsafe text
        if not reply.text and not reply.interrupted:
            key = 'error' if reply.kind == 'error' else 'empty'
            raw = reply.text = SPOKEN[key]
            emit([reply.text])
        if reply.text:
            self.store.add(session_id, 'assistant', raw, reply.interrupted)
        reply.prompt_evaluated = getattr(self.backend, 'prompt_evaluated', None)
        return reply

    def _system(self, session_id: str) -> str:
        """Return the persona, then (memory.summarize) what the dropped turns said."""
        summary = self.store.summary(session_id) if self.summarize else ''
        return f'{self.system_prompt}\n\n{SUMMARY_HEADER}\n{summary}' if summary else \
            self.system_prompt

    def _summarize(self, session_id: str, dropped: Sequence[StoredMessage]) -> None:
        """Fold the dropped turns into the session's summary with the model itself."""
        lines = [f'{"아이" if m.role == "user" else "로봇"}: {m.content.strip()}' for m in dropped]
        previous = self.store.summary(session_id)
        conversation = '\n'.join(([previous] if previous else []) + lines)
        prompt = [{'role': 'system', 'content': SUMMARY_INSTRUCTION},
                  {'role': 'user', 'content': conversation}]
        try:
            text = ''.join(self.backend.stream(prompt, Sampling(0.0, 1.0, 96))).strip()
        except LLMError as exc:
            log.error('session %s: summary failed, dropped turns are forgotten: %s',
                      session_id, exc)
            return
        if text:
            self.store.set_summary(session_id, text)
            log.info('session %s: %d dropped messages summarised in %d tokens', session_id,
                     len(dropped), self._count(text))

    def _retrieve(self, text: str) -> Retrieved:
        if self.knowledge is None:
            return Retrieved([], text)
        try:
            passages = self.knowledge.search(text, self.top_k)
        except Exception as exc:  # a broken index must not silence the robot
            log.error('retrieval failed, answering without passages: %s', exc)
            return Retrieved([], text)
        if self.safety is not None:  # passages are data: one that gives orders is dropped
            kept = []
            for p in passages:
                verdict = self.safety.check_passage(p.text)
                if verdict.flagged:
                    log.warning('dropped passage %s#%s (%s)', p.source, p.position,
                                verdict.reason)
                else:
                    kept.append(p)
            passages = kept
        if passages:
            log.info('retrieved %s', ', '.join(f'{p.source}#{p.position} ({p.score:.2f})'
                                               for p in passages))
        return with_context(text, passages, self._count, self.context_tokens)

    def reindex(self) -> str:
        """Re-ingest rag.sources (changed files only, vanished ones dropped); return a summary."""
        if self.knowledge is None:
            return 'retrieval is disabled (rag.enabled: false)'
        if not self.knowledge_sources:
            return 'rag.sources is empty: nothing to index'
        return self.knowledge.ingest(self.knowledge_sources, delete_missing=True).summary()

    def close(self) -> None:
        """Release the knowledge base and the model now, not at interpreter exit.

        Native libraries (Kiwi, Chroma, llama.cpp) abort the process when their threads are
        torn down during interpreter finalization after ROS has shut down.
        """
        if self.knowledge is not None:
            self.knowledge.close()
        self.knowledge = self.backend = None
        self.store.close()

    def _safe_reply(self, user: str, session_id: str, text: str, verdict,
                    on_sentence: Optional[Callable[[str], None]]) -> Reply:
        """Answer a flagged utterance with the category's safe line; alert if the policy says.

        Both turns are stored (the conversation stays whole); the model never sees the words.
        """
        log.warning('user %s: input flagged %s, action %s (%s)', user, verdict.category,
                    verdict.action, verdict.reason)
        if verdict.alert:
            self._alert(user, session_id, text, verdict)
        line = self.safety.reply_for(verdict, _language(text))
        self.store.add(session_id, 'user', text)
        self.store.add(session_id, 'assistant', line)
        self._forget(session_id)  # the KV snapshot no longer matches the stored history
        if on_sentence:
            on_sentence(line)
        return Reply(line, session_id, kind='safety', sentences=[line])

    def _alert(self, user: str, session_id: str, text: str, verdict) -> None:
        """Record a caregiver alert (JSON line in the data dir) and hand it to on_alert."""
        alert = {'time': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'user': user,
                 'session': session_id, 'category': verdict.category, 'action': verdict.action,
                 'utterance': text, 'reason': verdict.reason}
        if self.alerts_file is not None:
            try:
                with open(self.alerts_file, 'a', encoding='utf-8') as out:
                    out.write(json.dumps(alert, ensure_ascii=False) + '\n')
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                log.error('cannot record the caregiver alert in %s: %s', self.alerts_file, exc)
        log.warning('caregiver alert: %s', json.dumps(alert, ensure_ascii=False))
        if self.on_alert is not None:
            try:
                self.on_alert(alert)
            except Exception as exc:  # the child still gets the safe answer
                log.error('caregiver alert not delivered: %s', exc)

    def _canned(self, session_id: str, key: str, kind: str,
                on_sentence: Optional[Callable[[str], None]]) -> Reply:
        text = SPOKEN[key]
        if on_sentence:
            on_sentence(text)
        return Reply(text, session_id, kind=kind, sentences=[text])


def build_backend(params: Mapping[str, Any], data_dir: Path):
    """Create the configured LLM backend; for llama.cpp resolve and load the model."""
    backend = params['llm.backend']
    if backend == 'openai':
        host = urlparse(params['llm.base_url']).hostname or ''
        local = host in ('localhost', '127.0.0.1', '::1')
        log.log(logging.INFO if local else logging.WARNING,
                'LLM backend: OpenAI-compatible server %s%s', params['llm.base_url'],
                '' if local else ' (not this robot: every conversation is sent there)')
        return OpenAIBackend(params['llm.base_url'], params['llm.model'],
                             params['llm.api_key_env'], params['model.n_ctx'],
                             params['llm.timeout_s'])
    if backend != 'llama_cpp':
        raise ConfigError(f"llm.backend must be 'llama_cpp' or 'openai', got {backend!r}")
    choice = resolve_model(params['model.path'], params['model.repo'], params['model.file'],
                           params['model.download'], data_dir / 'models')
    spill = data_dir / 'kv' / choice.path.stem if params['memory.snapshots_on_disk'] else None
    model = LlamaCppBackend(choice.path, params['model.n_ctx'], params['model.n_threads'],
                            params['model.n_gpu_layers'], params['memory.snapshot_mb'], spill)
    log.info('model: %s (%s) from %s', model.describe(), choice.reason, choice.path)
    return model


def build_engine(params: Mapping[str, Any], backend=None) -> ChatEngine:
    """Create a ChatEngine from node parameters (see core/settings.py)."""
    data_dir = paths.data_dir(params['data_dir'])
    persona_dir = Path(params['persona.dir']) if params['persona.dir'] else \
        paths.default_persona_dir()
    persona = load_persona(persona_dir)
    if backend is None:
        backend = build_backend(params, data_dir)
    sampling = Sampling(params['llm.temperature'], params['llm.top_p'], params['llm.max_tokens'])
    knowledge = None
    if params['rag.enabled']:
        knowledge = build_knowledge_base(params)
        if params['rag.index_persona'] and persona.informations:
            knowledge.add_text('persona:informations.txt', '라이언에 대해', persona.informations)
        if source_paths(params):
            knowledge.ingest(source_paths(params), progress=True)
        log.info('knowledge base %s: %d chunks (%s)', params['rag.name'], len(knowledge),
                 knowledge.embedder.name)
    safety = None
    if params['safety.enabled']:
        from kidscare_llm.core.safety.checker import SafetyChecker

        config = Path(params['safety.config_dir']) if params['safety.config_dir'] else None
        kiwi = knowledge.analyzer.kiwi if knowledge is not None else None  # one Kiwi, 500 MB
        safety = SafetyChecker.load(config, kiwi=kiwi).warm_up()
        log.info('child safety: checks on input%s, config %s',
                 ' and every spoken sentence' if params['safety.check_output'] else '',
                 config or 'packaged')
    else:
        log.warning('child safety is OFF (safety.enabled: false): nothing checks what the '
                    'child says or what the model answers')
    return ChatEngine(backend, persona, SessionStore(data_dir / 'sessions.sqlite3'), sampling,
                      params['chat.max_utterance_chars'], params['persona.inline_informations'],
                      knowledge, params['rag.top_k'], params['rag.context_tokens'],
                      source_paths(params), params['memory.summarize'], safety,
                      data_dir / 'alerts.jsonl', params['safety.check_output'])
