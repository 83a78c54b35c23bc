"""The knowledge base: Korean-aware ingestion and hybrid retrieval (Kiwi-BM25 + dense), cited.

Documents (.txt, .md, .pdf, .docx) are cut at Kiwi's sentence boundaries into chunks of a few
hundred characters, each carrying its document's title. Every chunk is stored twice: its
vector in Chroma (embedded or a Chroma server) and its content morphemes in a BM25 index
persisted in SQLite and held in memory. A query takes the best candidates of both, fuses
their normalised scores with a fixed weight, and returns nothing when nothing is relevant.
Ingestion is incremental: a content hash per document decides what is re-embedded.
"""

from collections import Counter
from dataclasses import asdict, dataclass, field
import hashlib
import logging
import math
from pathlib import Path
import sqlite3
import threading
from typing import Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import urlparse
import zipfile

import numpy as np

from kidscare_llm.core.errors import ConfigError, KidscareError

log = logging.getLogger(__name__)

SUFFIXES = ('.txt', '.md', '.pdf', '.docx')


class DocumentError(KidscareError):
    """A document cannot be read (corrupt PDF, not UTF-8, unsupported type)."""


@dataclass
class Passage:
    """A retrieved chunk: its text, where it comes from, and how it scored."""

    chunk_id: str
    text: str
    source: str
    position: int
    title: str = ''
    score: float = 0.0
    bm25: float = 0.0
    dense: float = 0.0

    def citation(self) -> dict:
        """Return the JSON-able citation of this passage."""
        return {k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in asdict(self).items() if k != 'text'}


@dataclass
class IngestReport:
    """What one ingestion did, per document."""

    added: List[str] = field(default_factory=list)
    updated: List[str] = field(default_factory=list)
    unchanged: List[str] = field(default_factory=list)
    removed: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f'{len(self.added)} added, {len(self.updated)} updated, '
                f'{len(self.unchanged)} unchanged, {len(self.removed)} removed, '
                f'{len(self.failed)} failed; {self.chunks} chunks embedded in '
                f'{self.seconds:.1f} s')


# -- reading documents ---------------------------------------------------------------------
def read_document(path: Path) -> Tuple[str, str]:
    """Return (title, text) of a .txt, .md, .pdf or .docx file; raise DocumentError."""
    suffix = path.suffix.lower()
    try:
        if suffix in ('.txt', '.md'):
            text = path.read_bytes().decode('utf-8-sig')
            title = path.stem
            if suffix == '.md':
                for line in text.splitlines():
                    if line.startswith('#'):
                        title = line.lstrip('#').strip() or title
                        break
            return title, text
        if suffix == '.pdf':
            return _read_pdf(path)
        if suffix == '.docx':
            return path.stem, _read_docx(path)
    except UnicodeDecodeError as exc:
        raise DocumentError(f'{path}: not UTF-8 (byte {exc.start})') from None
    except OSError as exc:
        raise DocumentError(f'{path}: {exc.strerror}') from None
    raise DocumentError(f'{path}: unsupported type (use {", ".join(SUFFIXES)})')


def _read_pdf(path: Path) -> Tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(str(path))
        text = '\n'.join(page.extract_text() or '' for page in reader.pages)
        title = (reader.metadata.title if reader.metadata else None) or path.stem
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise DocumentError(f'{path}: unreadable PDF ({type(exc).__name__}: {exc})') from None
    if not text.strip():
        raise DocumentError(f'{path}: the PDF has no text layer (scanned? OCR it first)')
    return str(title), text


def _read_docx(path: Path) -> str:
    from xml.etree import ElementTree

    ns = '{http://schemas.openxmlformats.org/wordprocessingml/2006/main}'
    try:
        with zipfile.ZipFile(path) as z:
            root = ElementTree.fromstring(z.read('word/document.xml'))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as exc:
        raise DocumentError(f'{path}: unreadable .docx ({exc})') from None
    paragraphs = [''.join(t.text or '' for t in p.iter(f'{ns}t')) for p in root.iter(f'{ns}p')]
    return '\n'.join(p for p in paragraphs if p.strip())


def find_documents(paths: Iterable[Path]) -> List[Path]:
    """Expand folders (recursively) into the supported files they hold."""
    found: List[Path] = []
    for path in paths:
        path = Path(path).expanduser().resolve()
        if path.is_dir():
            found += sorted(p for p in path.rglob('*') if p.suffix.lower() in SUFFIXES
                            and p.is_file())
        else:
            found.append(path)
    return found


# -- chunking --------------------------------------------------------------------------------
def chunk_sentences(sentences: Sequence[str], title: str, size: int = 400,
                    overlap: int = 1) -> List[str]:
    """Pack sentences into chunks of about size characters, overlapping by whole sentences.

    Each chunk starts with the document title so a chunk read alone still says what it is about.
    """
    chunks: List[str] = []
    current: List[str] = []
    length = 0
    for sentence in sentences:
        if current and length + len(sentence) > size:
            chunks.append(' '.join(current))
            current = current[-overlap:] if overlap else []
            length = sum(len(s) + 1 for s in current)
        current.append(sentence)
        length += len(sentence) + 1
    if current and (not chunks or len(current) > overlap or not overlap):
        chunks.append(' '.join(current))
    prefix = f'{title}\n' if title else ''
    return [prefix + c for c in chunks]


# -- BM25 ------------------------------------------------------------------------------------
class BM25Index:
    """Okapi BM25 over content morphemes: rows in SQLite, postings in memory (built once)."""

    def __init__(self, db: sqlite3.Connection, k1: float = 1.2, b: float = 0.75):
        self._db, self.k1, self.b = db, k1, b
        self._db.execute('CREATE TABLE IF NOT EXISTS bm25 (chunk_id TEXT PRIMARY KEY, '
                         'terms TEXT NOT NULL)')
        self._rows: Dict[str, int] = {}
        self._ids: List[Optional[str]] = []
        self._lengths: List[int] = []
        self._postings: Dict[str, Dict[int, int]] = {}
        self._arrays: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        self._total = 0
        for chunk_id, terms in self._db.execute('SELECT chunk_id, terms FROM bm25'):
            self._add_memory(chunk_id, terms.split(' ') if terms else [])

    def __len__(self) -> int:
        return len(self._rows)

    def _add_memory(self, chunk_id: str, terms: List[str]) -> None:
        row = len(self._ids)
        self._rows[chunk_id] = row
        self._ids.append(chunk_id)
        self._lengths.append(len(terms))
        self._total += len(terms)
        for term, tf in Counter(terms).items():
            self._postings.setdefault(term, {})[row] = tf
            self._arrays.pop(term, None)

    def add(self, items: Sequence[Tuple[str, List[str]]]) -> None:
        """Index (chunk_id, terms) pairs (the caller commits)."""
        self.remove([cid for cid, _ in items if cid in self._rows])
        self._db.executemany('INSERT INTO bm25 (chunk_id, terms) VALUES (?, ?)',
                             [(cid, ' '.join(t)) for cid, t in items])
        for chunk_id, terms in items:
            self._add_memory(chunk_id, terms)

    def remove(self, chunk_ids: Iterable[str]) -> None:
        """Forget chunks (the caller commits)."""
        for chunk_id in chunk_ids:
            row = self._rows.pop(chunk_id, None)
            if row is None:
                continue
            stored = self._db.execute('SELECT terms FROM bm25 WHERE chunk_id = ?',
                                      (chunk_id,)).fetchone()
            self._db.execute('DELETE FROM bm25 WHERE chunk_id = ?', (chunk_id,))
            self._total -= self._lengths[row]
            self._ids[row] = None
            self._lengths[row] = 0
            for term in set(stored[0].split(' ')) if stored and stored[0] else ():
                posting = self._postings.get(term, {})
                posting.pop(row, None)
                self._arrays.pop(term, None)
                if not posting:
                    self._postings.pop(term, None)

    def _posting(self, term: str) -> Tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get(term)
        if arrays is None:
            posting = self._postings.get(term, {})
            arrays = (np.fromiter(posting.keys(), np.int64, len(posting)),
                      np.fromiter(posting.values(), np.float32, len(posting)))
            self._arrays[term] = arrays
        return arrays

    def search(self, terms: Sequence[str], k: int) -> List[Tuple[str, float]]:
        """Return the k best (chunk_id, score) for the query terms."""
        n = len(self._rows)
        if not n or not terms:
            return []
        lengths = np.asarray(self._lengths, dtype=np.float32)
        norm = self.k1 * (1 - self.b + self.b * lengths / (self._total / n))
        scores = np.zeros(len(self._ids), dtype=np.float32)
        for term, qtf in Counter(terms).items():
            rows, tf = self._posting(term)
            if not len(rows):
                continue
            idf = math.log(1 + (n - len(rows) + 0.5) / (len(rows) + 0.5))
            scores[rows] += qtf * idf * tf * (self.k1 + 1) / (tf + norm[rows])
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        return [(self._ids[i], float(scores[i])) for i in top[np.argsort(-scores[top])]
                if scores[i] > 0]


# -- fusion ----------------------------------------------------------------------------------
def fuse(bm25: Dict[str, float], dense: Dict[str, float], weight: float) -> Dict[str, float]:
    """Weighted sum of scores normalised per query: BM25 by its best, cosine by min-max.

    weight is the BM25 share. A candidate missing from one list gets 0 from it.
    """
    b_max = max(bm25.values(), default=0.0) or 1.0
    d_lo, d_hi = min(dense.values(), default=0.0), max(dense.values(), default=1.0)
    d_span = (d_hi - d_lo) or 1.0
    return {cid: weight * bm25.get(cid, 0.0) / b_max
            + (1 - weight) * ((dense[cid] - d_lo) / d_span if cid in dense else 0.0)
            for cid in set(bm25) | set(dense)}


# -- the knowledge base ----------------------------------------------------------------------
class KnowledgeBase:
    """One named knowledge base: manifest + BM25 in SQLite, vectors in Chroma."""

    def __init__(self, folder: Path, name: str, embedder, analyzer, chroma_url: str = '',
                 chunk_chars: int = 400, overlap: int = 1, fusion_weight: float = 0.5,
                 candidates: int = 40, min_dense: float = 0.0, min_bm25: float = 0.0):
        self.folder = Path(folder) / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name, self.embedder, self.analyzer = name, embedder, analyzer
        self.chunk_chars, self.overlap = chunk_chars, overlap
        self.fusion_weight, self.n_candidates = fusion_weight, candidates
        self.min_dense, self.min_bm25 = min_dense, min_bm25
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
        self._collection = self._open_collection(chroma_url)

    def _open_collection(self, chroma_url: str):
        import chromadb
        from chromadb.config import Settings

        collection = f'kb-{self.name}'
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
            client = chromadb.PersistentClient(path=str(self.folder / 'chroma'), settings=private)
        # No embedding function: we always pass our own vectors (Chroma's default downloads).
        return client.get_or_create_collection(
            collection, embedding_function=None,
            metadata={'hnsw:space': 'cosine', 'embedder': self.embedder.name})

    def __len__(self) -> int:
        return len(self.bm25)

    def sources(self) -> Dict[str, str]:
        """Return {source path: content hash} of every indexed document."""
        with self._lock:
            return dict(self._db.execute('SELECT source, hash FROM documents'))

    # -- ingestion -------------------------------------------------------------------------
    def ingest(self, paths: Iterable[Path], delete_missing: bool = False,
               progress: bool = False) -> IngestReport:
        """Index new and changed documents, skip unchanged ones, optionally drop missing ones.

        A document that cannot be read is reported and skipped; the others go on.
        """
        import time

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
        report.seconds = time.monotonic() - start
        log.info('knowledge base %s: %s', self.name, report.summary())
        return report

    def add_text(self, source: str, title: str, text: str) -> int:
        """Index one text under a source name unless it is unchanged; return chunks embedded."""
        digest = hashlib.sha256(text.encode('utf-8')).hexdigest()
        if self.sources().get(source) == digest:
            return 0
        return self._index(source, digest, title, text)

    def _index(self, source: str, digest: str, title: str, text: str) -> int:
        sentences = self.analyzer.sentences(text)
        chunks = chunk_sentences(sentences, title, self.chunk_chars, self.overlap)
        vectors = self.embedder.passages(chunks) if chunks else np.zeros((0, 1))
        terms = self.analyzer.terms_many(chunks)
        ids = [f'{hashlib.sha1(source.encode()).hexdigest()[:12]}:{digest[:8]}:{i}'
               for i in range(len(chunks))]
        self.remove([source])
        with self._lock:
            if chunks:
                self._collection.upsert(
                    ids=ids, embeddings=vectors.tolist(), documents=chunks,
                    metadatas=[{'source': source, 'position': i, 'title': title}
                               for i in range(len(chunks))])
            self._db.executemany(
                'INSERT INTO chunks (chunk_id, source, position, title, text) '
                'VALUES (?, ?, ?, ?, ?)',
                [(cid, source, i, title, c) for i, (cid, c) in enumerate(zip(ids, chunks))])
            self.bm25.add(list(zip(ids, terms)))
            self._db.execute('INSERT OR REPLACE INTO documents (source, hash, title, chunks) '
                             'VALUES (?, ?, ?, ?)', (source, digest, title, len(chunks)))
            self._db.commit()
        return len(chunks)

    def remove(self, sources: Iterable[str]) -> None:
        """Drop documents and all their chunks from both indexes."""
        for source in sources:
            with self._lock:
                ids = [r[0] for r in self._db.execute(
                    'SELECT chunk_id FROM chunks WHERE source = ?', (source,))]
                if ids:
                    self._collection.delete(ids=ids)
                self.bm25.remove(ids)
                self._db.execute('DELETE FROM chunks WHERE source = ?', (source,))
                self._db.execute('DELETE FROM documents WHERE source = ?', (source,))
                self._db.commit()

    # -- retrieval -------------------------------------------------------------------------
    def candidates(self, query: str) -> Tuple[Dict[str, float], Dict[str, float]]:
        """Return the best BM25 scores and dense cosines for a query, by chunk id."""
        if not len(self) or not query.strip():
            return {}, {}
        terms = self.analyzer.terms(query)
        vector = self.embedder.query(query).tolist()
        with self._lock:
            bm25 = dict(self.bm25.search(terms, self.n_candidates))
            got = self._collection.query(query_embeddings=[vector],
                                         n_results=min(self.n_candidates, len(self.bm25)),
                                         include=['distances'])
        return bm25, {cid: 1.0 - d for cid, d in zip(got['ids'][0], got['distances'][0])}

    def relevant(self, bm25: Dict[str, float], dense: Dict[str, float]) -> bool:
        """Apply the relevance floor: True when either retriever found something close enough."""
        return max(dense.values(), default=0.0) >= self.min_dense or \
            max(bm25.values(), default=0.0) >= self.min_bm25 > 0

    def search(self, query: str, k: int = 4) -> List[Passage]:
        """Return up to k passages for the query, best first; [] when nothing is relevant."""
        bm25, dense = self.candidates(query)
        if not (bm25 or dense) or not self.relevant(bm25, dense):
            return []
        fused = fuse(bm25, dense, self.fusion_weight)
        best = sorted(fused, key=fused.get, reverse=True)[:k]
        rows = self._chunks(best)
        return [Passage(cid, rows[cid][2], rows[cid][0], rows[cid][1], rows[cid][3],
                        fused[cid], bm25.get(cid, 0.0), dense.get(cid, 0.0))
                for cid in best if cid in rows]

    def _chunks(self, ids: Sequence[str]) -> Dict[str, Tuple[str, int, str, str]]:
        if not ids:
            return {}
        marks = ','.join('?' * len(ids))
        with self._lock:
            rows = self._db.execute(f'SELECT chunk_id, source, position, text, title FROM '
                                    f'chunks WHERE chunk_id IN ({marks})', list(ids))
            return {r[0]: (r[1], r[2], r[3], r[4] or '') for r in rows}

    def close(self) -> None:
        """Close the manifest database and drop the Chroma collection, embedder and analyzer."""
        with self._lock:
            self._db.close()
            self._collection = self.embedder = self.analyzer = None
