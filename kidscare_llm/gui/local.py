"""The chat window's in-process link (--local): the chat engine in this process, no robot.

For a laptop without a robot: the same ChatClient signals as a node link, but the worker
thread builds the engine itself and answers through it.
"""

import json
import threading
from typing import Any, Dict, Mapping, Optional

from kidscare_llm.core.errors import EmptyUtterance, KidscareError
from kidscare_llm.gui.client import ChatClient, log


class LocalClient(ChatClient):
    """The chat engine in this process (--local), for a laptop without a robot."""

    def __init__(self, params: Mapping[str, Any], user: Optional[str] = None):
        super().__init__(user or params['chat.default_user'], params['chat.max_utterance_chars'])
        self.params = dict(params)
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop the reply at its next token (directly: the worker is busy generating)."""
        self._cancel.set()

    def close(self, timeout: float = 5.0) -> None:
        """Cancel the reply being generated, then stop the worker and release the engine."""
        self._cancel.set()
        super().close(timeout)

    def _main(self) -> None:
        from kidscare_llm.core.build import build_engine

        self._emit(self.state, 'loading', '')
        try:
            engine = build_engine(self.params)
            engine.warm()  # on the thread that generates (see ChatEngine.warm)
        except KidscareError as exc:
            self._emit(self.state, 'failed', str(exc))
            return
        except Exception as exc:
            log.exception('local engine failed to start: %s', exc)
            self._emit(self.state, 'failed', str(exc))
            return
        try:
            self._emit(self.state, 'ready', '')
            self._emit(self.info, self._describe(engine))
            while True:
                kind, arg = self._jobs.get()
                if kind == 'stop':
                    break
                try:
                    self._job(engine, kind, arg)
                except Exception as exc:  # one bad turn must not end the conversation
                    log.exception('local %s failed: %s', kind, exc)
                    self._emit(self.notice, 'error', str(exc))
                    if kind == 'send':
                        self._emit(self.final, '')
        finally:
            engine.close()

    def _describe(self, engine) -> Dict[str, str]:
        return {'model': engine.describe(), 'backend': self.params['llm.backend'],
                'user': self.user, 'session': engine.session(self.user)}

    def _job(self, engine, kind: str, arg: Any) -> None:
        from kidscare_llm.core.chat.chunker import PieceBatcher

        if kind == 'send':
            self._cancel.clear()
            stream = PieceBatcher(self._relay_piece, 0.05)
            try:
                reply = engine.reply(self.user, arg, on_piece=stream.add,
                                     on_sentence=lambda s: self._emit(self.sentence, s),
                                     cancel=self._cancel)
            except EmptyUtterance:
                self._emit(self.final, '')
                return
            stream.flush()
            self._emit(self.sources, list(reply.sources))
            self._emit(self.final, reply.text)
        elif kind == 'user':
            self.user = arg
            self._emit(self.info, self._describe(engine))
        elif kind == 'reset':
            session_id = engine.reset(self.user)
            self._emit(self.reset_done, True,
                       json.dumps({'user': self.user, 'session': session_id}))
        # 'ptt': no STT node in-process

    def _relay_piece(self, text: str) -> None:
        self._emit(self.piece, text)
