"""Token streaming from a chat model: llama.cpp in-process, or any OpenAI-compatible server.

Both backends take chat messages and a cancel event and yield text pieces as they are
generated; cancelling stops generation at the next piece.
"""

from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
import threading
from typing import Dict, Iterator, List, Optional, Sequence
from urllib.parse import urlparse

from kidscare_llm.core.errors import LLMError, ModelError

log = logging.getLogger(__name__)

Message = Dict[str, str]


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one reply (the write-up's defaults: temperature 0.6, top_p 0.9)."""

    temperature: float = 0.6
    top_p: float = 0.9
    max_tokens: int = 256


class LlamaCppBackend:
    """A GGUF model run in-process by llama-cpp-python, with the model's own chat template."""

    def __init__(self, model_path: Path, n_ctx: int = 4096, n_threads: int = 0,
                 n_gpu_layers: int = -1):
        import llama_cpp

        self.gpu = bool(llama_cpp.llama_supports_gpu_offload())
        self.n_gpu_layers = n_gpu_layers if self.gpu else 0
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(),
                n_gpu_layers=self.n_gpu_layers, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f'llama.cpp cannot load {model_path}: {exc} (is the file complete '
                             'and a model this llama.cpp version supports?)') from None
        self.n_ctx = self._llm.n_ctx()
        self.model_name = self._llm.metadata.get('general.name') or Path(model_path).stem
        self.chat_format = self._llm.chat_format
        self._lock = threading.Lock()

    def describe(self) -> str:
        """Say which model runs where, for the start-up log and the GUI status line."""
        where = f'GPU ({self.n_gpu_layers} layers)' if self.n_gpu_layers else 'CPU'
        return f'llama.cpp {self.model_name} on {where}, n_ctx {self.n_ctx}'

    def count_tokens(self, text: str) -> int:
        """Count tokens exactly with the model's tokenizer."""
        return len(self._llm.tokenize(text.encode('utf-8'), add_bos=False, special=True))

    def stream(self, messages: Sequence[Message], sampling: Sampling,
               cancel: Optional[threading.Event] = None) -> Iterator[str]:
        """Yield reply pieces; stop at EOS, max_tokens, or the next piece after cancel is set."""
        with self._lock:
            try:
                chunks = self._llm.create_chat_completion(
                    messages=list(messages), stream=True, temperature=sampling.temperature,
                    top_p=sampling.top_p, max_tokens=sampling.max_tokens)
                for chunk in chunks:
                    if cancel is not None and cancel.is_set():
                        break
                    piece = chunk['choices'][0]['delta'].get('content')
                    if piece:
                        yield piece
            except (RuntimeError, ValueError) as exc:
                raise LLMError(f'llama.cpp generation failed: {exc}') from exc


class OpenAIBackend:
    """Any OpenAI-compatible chat server (Ollama, llama.cpp server, vLLM), streamed over SSE."""

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
               cancel: Optional[threading.Event] = None) -> Iterator[str]:
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
