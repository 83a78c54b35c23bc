"""The knowledge base: Korean-aware ingestion and hybrid retrieval (Kiwi-BM25 + dense), cited.

Composes the parts: documents are read and cut at Kiwi's sentence boundaries into chunks of a
few hundred characters (documents.py); every chunk is stored twice, its content morphemes in
a BM25 index in the manifest's SQLite file (bm25.py) at once, its vector in Chroma (store.py)
soon after, by a background worker (background.py). A query takes the best candidates of
both, fuses their normalised scores and returns nothing when nothing is relevant (fusion.py).
Ingestion is incremental: a content hash per document decides what is indexed again, and a
hash per chunk text what is embedded again.
"""

import hashlib
import logging
from pathlib import Path
import sqlite3
import threading
import time
from typing import Dict, Iterable, List, Optional, Tuple


from kidscare_llm.core.rag.background import EmbeddingWorker
from kidscare_llm.core.rag.bm25 import BM25Index
from kidscare_llm.core.rag.documents import (chunk_sentences, DocumentError, find_documents,
                                             IngestReport, read_document)
from kidscare_llm.core.rag.retrieval import Retrieval
from kidscare_llm.core.rag.store import VectorStore

log = logging.getLogger(__name__)


class KnowledgeBase(Retrieval):
    """One named knowledge base: manifest + BM25 in SQLite, vectors in Chroma.

    The defaults equal the parameter table's (core/params.py, rag.*); build.py passes them.
    fusion, fusion_weight, min_dense and min_bm25 may be set on a live instance (live
    parameters); embedding_status() tells how many chunks have their vectors yet.
    """

    def __init__(self, folder: Path, name: str, embedder, analyzer, chroma_url: str = '',
                 chunk_chars: int = 400, overlap: int = 1, fusion_weight: float = 0.6,
                 candidates: int = 40, min_dense: float = 0.82, min_bm25: float = 6.0,
                 inline_chunks: int = 8, fusion: str = 'learned'):
        self.folder = Path(folder) / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name, self.embedder, self.analyzer = name, embedder, analyzer
        self.chunk_chars, self.overlap = chunk_chars, overlap
        self.fusion_weight, self.n_candidates = fusion_weight, candidates
        self.fusion = fusion  # 'learned' (adapts to the question) or 'fixed' (fusion_weight)
        self.min_dense, self.min_bm25 = min_dense, min_bm25
        # a document of at most this many chunks is embedded before ingest returns (a second
        # or less); a longer one is searchable by BM25 at once and embedded in the background
        self.inline_chunks = inline_chunks
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.folder / 'manifest.sqlite3'),
                                   check_same_thread=False)
        self._db.execute('PRAGMA journal_mode=WAL')
        self._db.execute('CREATE TABLE IF NOT EXISTS documents (source TEXT PRIMARY KEY, '
                         'hash TEXT NOT NULL, title TEXT, chunks INTEGER NOT NULL)')
        self._db.execute('CREATE TABLE IF NOT EXISTS chunks (chunk_id TEXT PRIMARY KEY, '
                         'source TEXT NOT NULL, position INTEGER NOT NULL, title TEXT, '
                         'text TEXT NOT NULL)')
        self._db.execute('CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source)')
        self.bm25 = BM25Index(self._db)
        self.vectors = VectorStore(self.folder, name, embedder.name, chroma_url)
        self.worker = EmbeddingWorker(self._db, self._lock, embedder, self.vectors)
        if self.worker.pending():  # a previous run stopped before embedding everything
            log.info('knowledge base %s: resuming the embedding of %d chunks', name,
                     self.worker.pending())
            self.worker.kick()

    def __len__(self) -> int:
        return len(self.bm25)

    def sources(self) -> Dict[str, str]:
        """Return {source path: content hash} of every indexed document."""
        with self._lock:
            return dict(self._db.execute('SELECT source, hash FROM documents'))

    def documents(self) -> List[Tuple[str, str, int]]:
        """Return (source, title, chunks) of every indexed document, by source."""
        with self._lock:
            return [(s, t or '', n) for s, t, n in self._db.execute(
                'SELECT source, title, chunks FROM documents ORDER BY source')]

    # -- ingestion -------------------------------------------------------------------------
    def embedding_status(self) -> Dict[str, int]:
        """Return {'done', 'total'}: chunks with dense vectors, of all chunks (BM25 has all)."""
        pending = self.worker.pending()
        total = len(self)
        return {'done': max(total - pending, 0), 'total': total}

    def wait_embedded(self, timeout: Optional[float] = None, progress: bool = False) -> bool:
        """Block until every chunk has its vector (True) or timeout seconds pass (False)."""
        from tqdm import tqdm

        status = self.embedding_status()
        with tqdm(total=status['total'], initial=status['done'], unit='chunk',
                  desc=f'embed {self.name}', disable=not progress) as bar:
            return self.worker.wait(timeout, lambda left: bar.update(
                status['total'] - left - bar.n))

    def ingest(self, paths: Iterable[Path], delete_missing: bool = False,
               progress: bool = False, wait: Optional[bool] = None) -> IngestReport:
        """Index new and changed documents, skip unchanged ones, optionally drop missing ones.

        A document that cannot be read is reported and skipped; the others go on. New chunks
        are searchable by BM25 on return and gain dense vectors in the background; wait=True
        returns only when they have them. wait defaults to progress: the CLI, which shows a
        progress bar and then exits, waits; the console's uploads do not.
        """
        from tqdm import tqdm

        start = time.monotonic()
        report = IngestReport()
        paths = list(paths)
        files = find_documents(paths)
        known = self.sources()
        bar = tqdm(files, desc=f'ingest {self.name}', unit='file', disable=not progress)
        for path in bar:
            source = str(path)
            try:
                data = path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if known.get(source) == digest:
                    report.unchanged.append(source)
                    continue
                title, text = read_document(path)
                n = self._index(source, digest, title, text)
            except (DocumentError, OSError) as exc:
                message = str(exc) if isinstance(exc, DocumentError) else \
                    f'{path}: {exc.strerror}'
                report.failed.append((source, message))
                log.warning('skipped %s', message)
                continue
            (report.updated if source in known else report.added).append(source)
            report.chunks += n
            bar.set_postfix(chunks=report.chunks)
        if delete_missing:  # documents once found under these paths that are gone now
            roots = [str(Path(p).expanduser().resolve()) for p in paths]
            present = {str(p) for p in files}
            gone = [s for s in known if s not in present
                    and any(s == r or s.startswith(r.rstrip('/') + '/') for r in roots)]
            self.remove(gone)
            report.removed += gone
        if report.added or report.updated or report.removed:
            self.prune_cache()
        if progress if wait is None else wait:
            self.wait_embedded(progress=progress)
        report.seconds = time.monotonic() - start
        log.info('knowledge base %s: %s', self.name, report.summary())
        return report

    def prune_cache(self) -> int:
        """Forget cached vectors of texts no chunk has any more; return how many."""
        with self._lock:
            pruned = self.worker.cache.prune()
            self._db.commit()
        return pruned

    def add_text(self, source: str, title: str, text: str) -> int:
        """Index one text under a source name unless it is unchanged; return chunks stored."""
        digest = hashlib.sha256(text.encode('utf-8')).hexdigest()
        if self.sources().get(source) == digest:
            return 0
        return self._index(source, digest, title, text)

    def _index(self, source: str, digest: str, title: str, text: str) -> int:
        sentences = self.analyzer.sentences(text)
        chunks = chunk_sentences(sentences, title, self.chunk_chars, self.overlap)
        terms = self.analyzer.terms_many(chunks)
        ids = [f'{hashlib.sha1(source.encode()).hexdigest()[:12]}:{digest[:8]}:{i}'
               for i in range(len(chunks))]
        inline = len(chunks) <= self.inline_chunks
        vectors = self.worker.vectors_of(chunks) if inline else None
        self.remove([source])
        with self._lock:
            self._db.executemany(
                'INSERT INTO chunks (chunk_id, source, position, title, text) '
                'VALUES (?, ?, ?, ?, ?)',
                [(cid, source, i, title, c) for i, (cid, c) in enumerate(zip(ids, chunks))])
            if inline:
                self.vectors.upsert(ids, vectors, chunks,
                                    [{'source': source, 'position': i, 'title': title}
                                     for i in range(len(chunks))])
            else:
                self._db.executemany('INSERT OR IGNORE INTO pending (chunk_id) VALUES (?)',
                                     [(cid,) for cid in ids])
            self.bm25.add(list(zip(ids, terms)))
            self._db.execute('INSERT OR REPLACE INTO documents (source, hash, title, chunks) '
                             'VALUES (?, ?, ?, ?)', (source, digest, title, len(chunks)))
            self._db.commit()
        if not inline:
            self.worker.kick()
        return len(chunks)

    def remove(self, sources: Iterable[str]) -> None:
        """Drop documents and all their chunks from both indexes."""
        for source in sources:
            with self._lock:
                ids = [r[0] for r in self._db.execute(
                    'SELECT chunk_id FROM chunks WHERE source = ?', (source,))]
                self.vectors.delete(ids)
                self.bm25.remove(ids)
                self._db.executemany('DELETE FROM pending WHERE chunk_id = ?',
                                     [(c,) for c in ids])
                self._db.execute('DELETE FROM chunks WHERE source = ?', (source,))
                self._db.execute('DELETE FROM documents WHERE source = ?', (source,))
                self._db.commit()

    def close(self) -> None:
        """Stop the embedding worker (what is pending resumes next time), close the database."""
        self.worker.stop()
        with self._lock:
            self._db.close()
            self.vectors = self.embedder = self.analyzer = None
