"""The chunks' dense vectors in Chroma: embedded on disk under the data dir, or a server.

The one class that imports chromadb. It is handed vectors, never text to embed: a Chroma
collection without our vectors would download an ONNX model on its first query.
"""

import logging
from pathlib import Path
from typing import Dict, List, Sequence
from urllib.parse import urlparse

import numpy as np

from kidscare_llm.core.errors import ConfigError

log = logging.getLogger(__name__)


class VectorStore:
    """One Chroma collection (cosine space) of chunk vectors, with text and metadata."""

    def __init__(self, folder: Path, name: str, embedder_name: str, chroma_url: str = ''):
        import chromadb
        from chromadb.config import Settings

        private = Settings(anonymized_telemetry=False)  # a child's robot never reports home
        if chroma_url:
            url = urlparse(chroma_url)
            if not url.hostname:
                raise ConfigError(f'rag.chroma_url must look like http://host:8000, got '
                                  f'{chroma_url!r}')
            log.info('knowledge vectors on the Chroma server %s (rag.chroma_url)', chroma_url)
            client = chromadb.HttpClient(host=url.hostname, port=url.port or 8000,
                                         ssl=url.scheme == 'https', settings=private)
        else:
            client = chromadb.PersistentClient(path=str(Path(folder) / 'chroma'),
                                               settings=private)
        # No embedding function: we always pass our own vectors (Chroma's default downloads).
        self.collection = client.get_or_create_collection(
            f'kb-{name}', embedding_function=None,
            metadata={'hnsw:space': 'cosine', 'embedder': embedder_name})

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str],
               metadatas: Sequence[dict]) -> None:
        """Store (or replace) chunks' vectors with their text and metadata."""
        if ids:
            self.collection.upsert(ids=list(ids), embeddings=np.asarray(vectors).tolist(),
                                   documents=list(texts), metadatas=list(metadatas))

    def delete(self, ids: List[str]) -> None:
        """Forget chunks by id."""
        if ids:
            self.collection.delete(ids=ids)

    def vectors(self, ids: Sequence[str]) -> Dict[str, np.ndarray]:
        """Return the stored vectors of some chunks by id (chunks without one are left out)."""
        if not ids:
            return {}
        got = self.collection.get(ids=list(ids), include=['embeddings'])
        return {cid: np.asarray(v, dtype=np.float32)
                for cid, v in zip(got['ids'], got['embeddings'])}

    def query(self, vector: np.ndarray, n: int) -> Dict[str, float]:
        """Return the n nearest chunks as {chunk id: cosine similarity}."""
        if n <= 0:
            return {}
        got = self.collection.query(query_embeddings=[np.asarray(vector).tolist()],
                                    n_results=n, include=['distances'])
        return {cid: 1.0 - d for cid, d in zip(got['ids'][0], got['distances'][0])}
