"""Documents in, chunks out: reading .txt/.md/.pdf/.docx files and cutting them into chunks.

Kept apart from the indexes because it needs neither: a document becomes (title, text), a
text's sentences become chunks of a few hundred characters led by the title, and what
retrieval hands back (`Passage`) and what an ingestion did (`IngestReport`) are plain records.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple
import zipfile

from kidscare_llm.core.errors import KidscareError

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
                f'{len(self.failed)} failed; {self.chunks} chunks indexed in '
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
