"""Token streaming from a chat model: llama.cpp in-process, or any OpenAI-compatible server.

Both backends take chat messages and a cancel event and yield text pieces as they are
generated; cancelling stops generation at the next piece.
"""

from collections import OrderedDict
import ctypes
from dataclasses import dataclass
import hashlib
import json
import logging
import os
from pathlib import Path
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence
from urllib.parse import urlparse

import numpy as np

from kidscare_llm.core.errors import LLMError, ModelError

log = logging.getLogger(__name__)

Message = Dict[str, str]


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one reply (the write-up's defaults: temperature 0.6, top_p 0.9)."""

    temperature: float = 0.6
    top_p: float = 0.9
    max_tokens: int = 256


@dataclass
class KVSnapshot:
    """One session's evaluated tokens and their KV cache (no logits: they are recomputed)."""

    tokens: List[int]
    state: Any  # ctypes buffer from llama_state_seq_get_data

    @property
    def nbytes(self) -> int:
        """Size of the KV data in bytes."""
        return len(self.state)


class SnapshotCache:
    """Per-session KV snapshots in RAM under a byte budget, least recently used evicted first.

    With a folder, evicted snapshots go to disk instead of away, and come back on use (they
    also outlive a restart: a returning child's history need not be re-read).
    """

    def __init__(self, budget_bytes: int, folder: Optional[Path] = None):
        self.budget_bytes = budget_bytes
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._items: 'OrderedDict[str, KVSnapshot]' = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items or bool(self.folder and self._path(key).exists())

    @property
    def nbytes(self) -> int:
        """Bytes held in RAM by all snapshots."""
        return sum(s.nbytes for s in self._items.values())

    def _path(self, key: str) -> Path:
        return self.folder / f'{hashlib.sha1(key.encode()).hexdigest()[:20]}.kv'

    def _spill(self, key: str, snapshot: KVSnapshot) -> None:
        if self.folder is None:
            log.info('KV snapshot of %s evicted (budget %d MB)', key, self.budget_bytes // 2**20)
            return
        self.write(key, snapshot)

    def write(self, key: str, snapshot: KVSnapshot) -> None:
        """Write a snapshot to the folder (atomically)."""
        tokens = np.asarray(snapshot.tokens, dtype=np.int32)
        tmp = self._path(key).with_suffix('.tmp')
        with tmp.open('wb') as f:
            f.write(len(tokens).to_bytes(8, 'little') + tokens.tobytes())
            f.write(bytes(snapshot.state))
        tmp.replace(self._path(key))

    def read(self, key: str) -> Optional[KVSnapshot]:
        """Read a snapshot from the folder, or None."""
        try:
            data = self._path(key).read_bytes()
        except (OSError, TypeError):
            return None
        n = int.from_bytes(data[:8], 'little')
        tokens = np.frombuffer(data[8:8 + 4 * n], dtype=np.int32).tolist()
        state = data[8 + 4 * n:]
        return KVSnapshot(tokens, (ctypes.c_uint8 * len(state)).from_buffer_copy(state))

    def _load(self, key: str) -> Optional[KVSnapshot]:
        snapshot = self.read(key)
        if snapshot is not None:
            self._path(key).unlink()  # RAM holds it now
        return snapshot

    def put(self, key: str, snapshot: KVSnapshot) -> None:
        """Keep a snapshot, evicting (or spilling) the least recently used over the budget."""
        self._items.pop(key, None)
        if snapshot.nbytes > self.budget_bytes:
            self._spill(key, snapshot)
            return
        self._items[key] = snapshot
        while self.nbytes > self.budget_bytes:
            self._spill(*self._items.popitem(last=False))

    def get(self, key: str) -> Optional[KVSnapshot]:
        """Return a snapshot (marking it recently used), from disk if spilled, or None."""
        snapshot = self._items.get(key)
        if snapshot is not None:
            self._items.move_to_end(key)
        elif self.folder is not None:
            snapshot = self._load(key)
            if snapshot is not None:
                self.put(key, snapshot)
        return snapshot

    def drop(self, key: str) -> None:
        """Forget a session's snapshot (its history was trimmed, or it was reset)."""
        self._items.pop(key, None)
        if self.folder is not None:
            self._path(key).unlink(missing_ok=True)


class LlamaCppBackend:
    """A GGUF model run in-process by llama-cpp-python, with the model's own chat template.

    One model serves many sessions. The KV cache holds the last session's prompt; when another
    session speaks, the current one's KV is saved as a snapshot and the speaker's restored, so
    each session only ever evaluates its new tokens (prefix matching does the rest).
    """

    kind = 'llama_cpp'

    def __init__(self, model_path: Path, n_ctx: int = 4096, n_threads: int = 0,
                 n_gpu_layers: int = -1, snapshot_mb: int = 256,
                 snapshot_dir: Optional[Path] = None):
        import llama_cpp

        self._lib = llama_cpp
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
        self.snapshots = SnapshotCache(snapshot_mb * 2**20, snapshot_dir) \
            if snapshot_mb > 0 else None
        self._active: Optional[str] = None
        self.switch_ms = 0.0  # cost of the last session switch (save + restore)
        self.last_switch = 'same'  # same | restored | fresh: what the last reply started from
        self._saved = False  # True while the active session's snapshot matches the KV cache
        self.evaluated = 0  # tokens run through the model since load (prompt and reply)
        self.prompt_evaluated = 0  # prompt tokens the last reply had to evaluate
        evaluate = self._llm.eval

        def counting_eval(tokens):
            self.evaluated += len(tokens)
            return evaluate(tokens)
        self._llm.eval = counting_eval

    def describe(self) -> str:
        """Say which model runs where, for the start-up log and the GUI status line."""
        where = f'GPU ({self.n_gpu_layers} layers)' if self.n_gpu_layers else 'CPU'
        return f'llama.cpp {self.model_name} on {where}, n_ctx {self.n_ctx}'

    def count_tokens(self, text: str) -> int:
        """Count tokens exactly with the model's tokenizer."""
        return len(self._llm.tokenize(text.encode('utf-8'), add_bos=False, special=True))

    def stream(self, messages: Sequence[Message], sampling: Sampling,
               cancel: Optional[threading.Event] = None,
               session: Optional[str] = None) -> Iterator[str]:
        """Yield reply pieces; stop at EOS, max_tokens, or the next piece after cancel is set."""
        with self._lock:
            self._activate(session)
            self._saved = False  # the KV is about to change
            start = self.evaluated
            first = True
            try:
                chunks = self._llm.create_chat_completion(
                    messages=list(messages), stream=True, temperature=sampling.temperature,
                    top_p=sampling.top_p, max_tokens=sampling.max_tokens)
                for chunk in chunks:
                    if first:
                        self.prompt_evaluated, first = self.evaluated - start, False
                    if cancel is not None and cancel.is_set():
                        break
                    piece = chunk['choices'][0]['delta'].get('content')
                    if piece:
                        yield piece
            except (RuntimeError, ValueError) as exc:
                raise LLMError(f'llama.cpp generation failed: {exc}') from exc

    def _activate(self, session: Optional[str]) -> None:
        """Make session the owner of the KV cache: save the previous owner's, restore its."""
        if session == self._active:
            self.last_switch = 'same'
            return
        start = time.perf_counter()
        self._save_active()
        snapshot = self.snapshots.get(session) \
            if self.snapshots is not None and session else None
        if snapshot is not None:
            self._restore(snapshot)
        self.last_switch = 'restored' if snapshot is not None else 'fresh'
        self._active = session
        self.switch_ms = (time.perf_counter() - start) * 1000

    def _save_active(self) -> None:
        """Snapshot the session owning the KV cache, unless its snapshot is already current."""
        if self.snapshots is not None and self._active is not None and self._llm.n_tokens \
                and not self._saved:
            self.snapshots.put(self._active, self._save())
            self._saved = True

    def _save(self) -> KVSnapshot:
        ctx = self._llm._ctx.ctx
        size = self._lib.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        self._lib.llama_state_seq_get_data(ctx, buf, size, 0)
        return KVSnapshot(self._llm.input_ids[:self._llm.n_tokens].tolist(), buf)

    def _restore(self, snapshot: KVSnapshot) -> None:
        llm = self._llm
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        if self._lib.llama_state_seq_set_data(llm._ctx.ctx, snapshot.state, snapshot.nbytes,
                                              0) != snapshot.nbytes:
            llm.n_tokens = 0  # unusable: the next prompt is evaluated in full
            return
        n = len(snapshot.tokens)
        llm.input_ids[:n] = snapshot.tokens
        llm.n_tokens = n
        llm._requires_eval = True  # logits were not saved: re-run the last token

    def checkpoint(self) -> None:
        """Snapshot the active session now (call when idle) so a switch need not save it."""
        with self._lock:
            self._save_active()

    def forget(self, session: str) -> None:
        """Drop a session's snapshot (history trimmed or persona changed)."""
        with self._lock:
            if self.snapshots is not None:
                self.snapshots.drop(session)
            if session == self._active:
                self._saved = False

    def warm(self, system_prompt: str) -> int:
        """Evaluate the persona once, so no session's first reply pays for it.

        Runs the model's own chat template on [persona, empty user turn] for one token: the
        next real prompt shares everything up to the user's words and reuses it. With
        snapshots on disk the result is saved there, and a restart restores it instead.
        Returns the tokens evaluated (0 when restored).
        """
        spill = self.snapshots is not None and self.snapshots.folder is not None
        key = 'warm:' + hashlib.sha1(system_prompt.encode('utf-8')).hexdigest()
        with self._lock:
            self._active, self._saved = None, False
            saved = self.snapshots.read(key) if spill else None
            if saved is not None:
                self._restore(saved)
                return 0
            start = self.evaluated
            for _ in self._llm.create_chat_completion(
                    messages=[{'role': 'system', 'content': system_prompt},
                              {'role': 'user', 'content': ''}],
                    max_tokens=1, temperature=0.0, stream=True):
                pass
            if spill:
                self.snapshots.write(key, self._save())
            return self.evaluated - start


class OpenAIBackend:
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
