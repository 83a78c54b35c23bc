"""Any OpenAI-compatible chat server (Ollama, llama.cpp server, vLLM), streamed over SSE."""

import json
import os
import threading
from typing import Iterator, List, Optional, Sequence
from urllib.parse import urlparse

from kidscare_llm.core.errors import LLMError
from kidscare_llm.core.llm.base import Backend, Message, Sampling


class OpenAIBackend(Backend):
    """Any OpenAI-compatible chat server (Ollama, llama.cpp server, vLLM), streamed over SSE."""

    kind = 'openai'

    def __init__(self, base_url: str, model: str = '', api_key_env: str = 'OPENAI_API_KEY',
                 n_ctx: int = 4096, timeout_s: float = 60.0):
        url = urlparse(base_url.rstrip('/'))
        if url.scheme not in ('http', 'https') or not url.hostname:
            raise LLMError(f'llm.base_url must be an http(s) URL, got {base_url!r}')
        self._url = url
        self.model_name = model or 'default'
        self._api_key = os.environ.get(api_key_env, '') if api_key_env else ''
        self.n_ctx = n_ctx
        self.timeout_s = timeout_s
        self.gpu = False

    def describe(self) -> str:
        """Say which server and model answer."""
        return f'OpenAI-compatible server {self._url.geturl()} model {self.model_name}'

    def count_tokens(self, text: str) -> int:
        """Estimate tokens (servers do not share a tokenizer): about 3 UTF-8 bytes per token."""
        return len(text.encode('utf-8')) // 3 + 1

    def _connect(self):
        import http.client

        cls = http.client.HTTPSConnection if self._url.scheme == 'https' else \
            http.client.HTTPConnection
        return cls(self._url.hostname, self._url.port, timeout=self.timeout_s)

    def stream(self, messages: Sequence[Message], sampling: Sampling,
               cancel: Optional[threading.Event] = None,
               session: Optional[str] = None) -> Iterator[str]:
        """POST /chat/completions with stream=true and yield the content deltas."""
        body = json.dumps({'model': self.model_name, 'messages': list(messages), 'stream': True,
                           'temperature': sampling.temperature, 'top_p': sampling.top_p,
                           'max_tokens': sampling.max_tokens}).encode('utf-8')
        headers = {'Content-Type': 'application/json', 'Accept': 'text/event-stream'}
        if self._api_key:
            headers['Authorization'] = f'Bearer {self._api_key}'
        conn = self._connect()
        try:
            conn.request('POST', f'{self._url.path}/chat/completions', body, headers)
            resp = conn.getresponse()
            if resp.status != 200:
                detail = resp.read(300).decode('utf-8', 'replace')
                raise LLMError(f'{self._url.geturl()} answered HTTP {resp.status}: {detail}')
            for raw in resp:
                if cancel is not None and cancel.is_set():
                    break  # closing the connection tells the server to stop
                piece = _sse_piece(raw)
                if piece is None:
                    break
                if piece:
                    yield piece
        except OSError as exc:
            raise LLMError(f'cannot reach {self._url.geturl()}: {exc}') from exc
        finally:
            conn.close()


def _sse_piece(raw: bytes) -> Optional[str]:
    """Return the content delta of one SSE line, '' for other lines, None at [DONE]."""
    line = raw.decode('utf-8', 'replace').strip()
    if not line.startswith('data:'):
        return ''
    data = line[5:].strip()
    if data == '[DONE]':
        return None
    try:
        choices: List[dict] = json.loads(data).get('choices') or []
    except ValueError:
        raise LLMError(f'server sent a line that is not JSON: {data[:120]!r}') from None
    if not choices:
        return ''
    return (choices[0].get('delta') or {}).get('content') or ''
