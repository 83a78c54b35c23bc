"""Generation of one reply: stream the model, cut sentences, check each before it is heard.

A sentence the safety check flags is replaced by the category's safe line and the model is
stopped at once; the stored reply is what was spoken, so nobody ever hears or reads the rest.
"""

import logging
import threading
from typing import List, Optional

from kidscare_llm.core.chat.chunker import SentenceChunker
from kidscare_llm.core.chat.reply import Reply
from kidscare_llm.core.errors import LLMError
from kidscare_llm.core.rag.korean import language_of

log = logging.getLogger(__name__)


class _Either:
    """Looks like one threading.Event that is set when either of two is (cancel or unsafe)."""

    def __init__(self, first: Optional[threading.Event], second: threading.Event):
        self._events = [e for e in (first, second) if e is not None]

    def is_set(self) -> bool:
        """Return True when any of the events is set."""
        return any(e.is_set() for e in self._events)


class ReplyGenerator:
    """Runs the engine's backend for one reply and fills in the Reply as it goes."""

    def __init__(self, engine):
        self.engine = engine

    def generate(self, reply: Reply, messages, text: str, options,
                 on_piece, on_sentence, cancel) -> None:
        """Stream the model's reply into `reply`; check each sentence before it is heard."""
        engine = self.engine
        session_id = reply.session_id
        check = engine.safety is not None and options.check_output
        chunker = SentenceChunker()
        parts: List[str] = []
        unsafe = threading.Event()  # set by the output check: the model stops at once
        stop = _Either(cancel, unsafe)

        def emit(sentences: List[str]) -> None:
            for sentence in sentences:
                if unsafe.is_set():
                    return
                if check:
                    verdict = engine.safety.check_output(sentence)
                    if verdict.flagged:  # never spoken: replaced, and generation stops
                        unsafe.set()
                        log.warning('session %s: unsafe sentence replaced (%s): %.80r',
                                    session_id, verdict.reason, sentence)
                        sentence = engine.safety.reply_for(verdict, language_of(text))
                        reply.kind = 'safety'
                reply.sentences.append(sentence)
                if on_sentence:
                    on_sentence(sentence)

        try:
            for piece in engine.backend.stream(messages, options.sampling, stop, session_id):
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
        elif check and reply.text:
            verdict = engine.safety.check_output(reply.text)  # what no single sentence showed
            if verdict.flagged:
                log.warning('session %s: unsafe reply replaced (%s)', session_id, verdict.reason)
                raw = reply.text = engine.safety.reply_for(verdict, language_of(text))
                reply.kind = 'safety'
        if reply.kind == 'safety':
            engine.backend.forget(session_id)  # the KV cache holds the unsafe text
        if not reply.text and not reply.interrupted:
            raw = reply.text = engine.persona.line('error' if reply.kind == 'error' else 'empty')
            emit([reply.text])
        if reply.text:
            engine.store.add(session_id, 'assistant', raw, reply.interrupted)
