"""A GGUF model run in-process by llama-cpp-python, with per-session KV snapshots."""

import ctypes
import hashlib
import os
from pathlib import Path
import threading
import time
from typing import Iterator, Optional, Sequence, Tuple

from kidscare_llm.core.errors import LLMError, ModelError
from kidscare_llm.core.llm.base import Backend, Message, Sampling
from kidscare_llm.core.llm.snapshots import KVSnapshot, SnapshotCache

CPU_SYS = Path('/sys/devices/system/cpu')
CGROUP_CPU_MAX = Path('/sys/fs/cgroup/cpu.max')


def usable_cores(sys_dir: Path = CPU_SYS, cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Count the physical cores this process may use: its CPU affinity, SMT siblings once.

    A cgroup CPU quota (a container given 2 CPUs of a 16-core host) caps the count.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = sys_dir / f'cpu{cpu}' / 'topology'
        try:
            cores.add((topology.joinpath('physical_package_id').read_text().strip(),
                       topology.joinpath('core_id').read_text().strip()))
        except OSError:
            cores.add(('cpu', str(cpu)))
    count = max(1, len(cores))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != 'max':
            count = min(count, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return count


def resolve_threads(n_threads: int = 0, n_threads_batch: int = 0,
                    cores: Optional[int] = None) -> Tuple[int, int]:
    """Return (decode threads, prompt threads); 0 means the default rule.

    The rule (measured in bench/threads.py, reasoning in docs/robot.md): decode with one
    core fewer than the usable physical cores, so a neighbour process on the robot preempts
    no llama.cpp worker (the workers meet at every layer: one preempted worker stalls all);
    evaluate prompts with the same count.
    """
    cores = cores or usable_cores()
    decode = n_threads if n_threads > 0 else max(1, cores - 1)
    batch = n_threads_batch if n_threads_batch > 0 else decode
    return decode, batch


class LlamaCppBackend(Backend):
    """A GGUF model run in-process by llama-cpp-python, with the model's own chat template.

    One model serves many sessions. The KV cache holds the last session's prompt; when another
    session speaks, the current one's KV is saved as a snapshot and the speaker's restored, so
    each session only ever evaluates its new tokens (prefix matching does the rest).
    """

    kind = 'llama_cpp'
    exact_tokens = True
    keeps_kv = True

    def __init__(self, model_path: Path, n_ctx: int = 4096, n_threads: int = 0,
                 n_gpu_layers: int = -1, snapshot_mb: int = 1024,
                 snapshot_dir: Optional[Path] = None):
        import llama_cpp

        self._lib = llama_cpp
        self.gpu = bool(llama_cpp.llama_supports_gpu_offload())
        self.n_gpu_layers = n_gpu_layers if self.gpu else 0
        self.n_threads, self.n_threads_batch = resolve_threads(n_threads)
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(model_path), n_ctx=n_ctx, n_threads=self.n_threads,
                n_threads_batch=self.n_threads_batch, n_gpu_layers=self.n_gpu_layers,
                verbose=False)
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
        where = f'GPU ({self.n_gpu_layers} layers)' if self.n_gpu_layers else \
            f'CPU ({self.n_threads} thread{"s" if self.n_threads > 1 else ""})'
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
