"""Knowledge uploads: checked, named safely, stored under the data dir, ingested in the background.

An upload must have an allowed extension AND content that matches it (a PDF starts with
%PDF-, a .docx is a zip holding word/document.xml, a .txt or .md is UTF-8 text without NUL
bytes), stay under console.upload_mb, and gets a name made only of letters, digits, '-', '_'
and one extension, so '../' or a path cannot lead anywhere but <data dir>/console/uploads.
Ingestion itself is the chat node's (knowledge.ingest); a Job follows its progress answers.
"""

import io
import itertools
import os
from pathlib import Path
import threading
import time
from typing import Dict, List, Optional
import unicodedata
import uuid
import zipfile

from kidscare_llm.core.caregiver.knowledge import uploads_dir
from kidscare_llm.core.rag.documents import SUFFIXES

MAX_FILES = 10  # per upload
MAX_NAME = 80  # characters of a stored name's stem
KEEP_JOBS = 50


class UploadError(ValueError):
    """One uploaded file refused: its name, and why."""


def safe_name(name: str) -> str:
    """Return a stored name for an uploaded file name: no folders, no dots but the extension.

    '../../etc/passwd.txt' -> 'passwd.txt'; '공룡 이야기.MD' -> '공룡_이야기.md'.
    """
    name = unicodedata.normalize('NFC', str(name)).replace('\\', '/').split('/')[-1]
    stem, dot, suffix = name.rpartition('.')
    if not dot or '.' + suffix.lower() not in SUFFIXES:
        raise UploadError(f'{name or "?"}: only {", ".join(SUFFIXES)} files are accepted')
    clean = ''.join(c if c.isalnum() or c in '-_' else '_' for c in stem).strip('_')
    clean = '_'.join(part for part in clean.split('_') if part)[:MAX_NAME]
    if not clean:
        raise UploadError(f'{name}: the name has no letters or digits')
    return f'{clean}.{suffix.lower()}'


def check_content(name: str, data: bytes, limit: int) -> None:
    """Refuse a file that is empty, too big, or not what its extension says."""
    if not data:
        raise UploadError(f'{name}: empty file')
    if len(data) > limit:
        raise UploadError(f'{name}: {len(data) / 1e6:.1f} MB, over the {limit // 2**20} MB '
                          'limit (console.upload_mb)')
    suffix = Path(name).suffix.lower()
    if suffix == '.pdf' and not data.startswith(b'%PDF-'):
        raise UploadError(f'{name}: not a PDF (it does not start with %PDF-)')
    if suffix == '.docx':
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as docx:
                if 'word/document.xml' not in docx.namelist():
                    raise UploadError(f'{name}: not a Word document (no word/document.xml)')
        except zipfile.BadZipFile:
            raise UploadError(f'{name}: not a Word .docx file (not a zip archive)') from None
    if suffix in ('.txt', '.md'):
        try:
            text = data.decode('utf-8-sig')
        except UnicodeDecodeError as exc:
            raise UploadError(f'{name}: not UTF-8 text (byte {exc.start}); save it as UTF-8'
                              ) from None
        if '\x00' in text:
            raise UploadError(f'{name}: binary data, not text')


def store(data_dir: Path, name: str, data: bytes) -> Path:
    """Write an accepted upload (replacing one of the same name) and return its path."""
    folder = uploads_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert path.resolve().parent == folder.resolve()  # safe_name made sure; never otherwise
    tmp = folder / f'.{uuid.uuid4().hex}.part'
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


class Job:
    """One background ingestion: files accepted and refused, progress, the chat node's result."""

    def __init__(self, files: List[str], refused: List[List[str]]):
        self.id = uuid.uuid4().hex[:12]
        self.files = files
        self.failed = list(refused)  # [name, why]: refused here, or unreadable there
        self.done, self.total, self.current = 0, len(files), ''
        self.state = 'running' if files else 'done'
        self.error = ''
        self.result: Optional[dict] = None
        self.started = time.time()

    def on_progress(self, answer: dict) -> None:
        """Take one progress answer of knowledge.ingest."""
        step = answer.get('progress') or {}
        self.done = int(step.get('done', self.done))
        self.total = int(step.get('total', self.total)) or self.total
        self.current = str(step.get('file', ''))

    def to_dict(self) -> dict:
        """Return what the page's progress bar shows."""
        return {'id': self.id, 'state': self.state, 'done': self.done, 'total': self.total,
                'current': self.current, 'failed': self.failed, 'error': self.error,
                'added': (self.result or {}).get('added', []),
                'updated': (self.result or {}).get('updated', []),
                'unchanged': (self.result or {}).get('unchanged', [])}


class Jobs:
    """The console's ingestion jobs, each on its own thread (the page polls them)."""

    def __init__(self, link, timeout_s: float):
        self.link = link
        self.timeout_s = timeout_s
        self._jobs: Dict[str, Job] = {}
        self._lock = threading.Lock()
        self._count = itertools.count()

    def start(self, files: List[str], refused: List[List[str]]) -> Job:
        """Ask the chat node to ingest the stored files; return the job at once."""
        job = Job(files, refused)
        with self._lock:
            self._jobs[job.id] = job
            for old in list(self._jobs)[:-KEEP_JOBS]:
                del self._jobs[old]
        if files:
            threading.Thread(target=self._run, args=(job,), daemon=True,
                             name=f'ingest-{next(self._count)}').start()
        return job

    def _run(self, job: Job) -> None:
        from kidscare_llm.console.link import LinkError

        try:
            job.result = self.link.call('knowledge.ingest', progress=job.on_progress,
                                        timeout=self.timeout_s, files=job.files)
            job.failed += job.result.get('failed', [])
            job.done = job.total
            job.state = 'done'
        except LinkError as exc:
            job.error, job.state = str(exc), 'failed'

    def get(self, job_id: str) -> Optional[Job]:
        """Return a job by id (None when unknown or long gone)."""
        with self._lock:
            return self._jobs.get(job_id)
