"""The knowledge base as a caregiver manages it: list, ingest uploads with progress, remove.

The chat node owns the knowledge base (its replies search it), so the console never opens it:
it stores an upload under <data dir>/console/uploads and asks the chat node to ingest that
file (knowledge.ingest). Only files in that folder are taken, so a request cannot make the
node read anything else on the robot. When each document was last ingested is kept beside
the rules in <data dir>/caregiver/ingested.json (the knowledge base keeps content hashes only).
"""

import json
import os
from pathlib import Path
import threading
import time
from typing import Callable, List, Optional

from kidscare_llm.core.errors import KidscareError

UPLOADS = ('console', 'uploads')  # under the data dir: where the console stores an upload
PERSONA_PREFIX = 'persona:'  # the persona's informations.txt (the Persona page edits it)


class KnowledgeError(KidscareError):
    """The knowledge base is off, or a request names a file outside the uploads folder."""


def uploads_dir(data_dir: Path) -> Path:
    """Return the folder uploads are stored in (and the only one knowledge.ingest reads)."""
    return Path(data_dir).joinpath(*UPLOADS)


class KnowledgeDesk:
    """List, ingest and remove documents of the engine's knowledge base, for the console."""

    def __init__(self, engine, data_dir: Optional[Path]):
        self.engine = engine
        self.data_dir = Path(data_dir) if data_dir else None
        self._times_path = self.data_dir / 'caregiver' / 'ingested.json' if data_dir else None
        self._lock = threading.Lock()

    def _kb(self):
        kb = getattr(self.engine, 'knowledge', None)
        if kb is None:
            raise KnowledgeError('the knowledge base is off on this robot (rag.enabled: false)')
        return kb

    def _times(self) -> dict:
        try:
            return json.loads(self._times_path.read_text(encoding='utf-8'))
        except (OSError, ValueError, AttributeError):
            return {}

    def _save_times(self, times: dict) -> None:
        if self._times_path is None:
            return
        self._times_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._times_path.with_suffix('.tmp')
        tmp.write_text(json.dumps(times, ensure_ascii=False), encoding='utf-8')
        os.replace(tmp, self._times_path)

    def list(self) -> List[dict]:
        """Return every document: source, name, title, chunks, last ingested, upload or not."""
        kb = self._kb()
        times = self._times()
        root = str(uploads_dir(self.data_dir)) + os.sep if self.data_dir else None
        out = []
        for source, title, chunks in kb.documents():
            uploaded = bool(root) and source.startswith(root)
            out.append({'source': source, 'name': Path(source).name if uploaded else source,
                        'title': title, 'chunks': chunks, 'ingested': times.get(source),
                        'uploaded': uploaded, 'persona': source.startswith(PERSONA_PREFIX)})
        return out

    def status(self) -> dict:
        """Return {'done', 'total'}: chunks searchable by meaning (dense vectors) of all."""
        return dict(self._kb().embedding_status())

    def _upload(self, name: str) -> Path:
        """Return the path of an upload, refusing anything not directly in the uploads folder."""
        if self.data_dir is None:
            raise KnowledgeError('this chat node has no data dir')
        root = uploads_dir(self.data_dir).resolve()
        path = (root / str(name)).resolve()
        if path.parent != root or not path.is_file():
            raise KnowledgeError(f'{name!r} is not an uploaded file in {root}')
        return path

    def ingest(self, files: List[str],
               progress: Optional[Callable[[dict], None]] = None) -> dict:
        """Ingest uploaded files (names in the uploads folder) one by one, with progress.

        Return {'added', 'updated', 'unchanged', 'failed': [[name, error]], 'chunks'}; a file
        that cannot be read (corrupt PDF, not UTF-8) is reported and the others go on. The
        next reply searches the new chunks: it is the same knowledge base.
        """
        kb = self._kb()
        paths = [self._upload(name) for name in files]
        result = {'added': [], 'updated': [], 'unchanged': [], 'failed': [], 'chunks': 0}
        total = len(paths)
        for i, path in enumerate(paths):
            if progress:
                progress({'done': i, 'total': total, 'file': path.name})
            report = kb.ingest([path])
            for key in ('added', 'updated', 'unchanged'):
                result[key] += [Path(s).name for s in getattr(report, key)]
            result['failed'] += [[Path(s).name, _short(e, path)] for s, e in report.failed]
            result['chunks'] += report.chunks
            if report.added or report.updated:
                with self._lock:
                    times = self._times()
                    times[str(path)] = time.time()
                    self._save_times(times)
        if progress:
            progress({'done': total, 'total': total, 'file': ''})
        return result

    def remove(self, sources: List[str]) -> dict:
        """Drop documents from the knowledge base, and delete the upload file of an upload."""
        kb = self._kb()
        known = kb.sources()
        removed = [s for s in sources if s in known and not s.startswith(PERSONA_PREFIX)]
        kb.remove(removed)
        root = uploads_dir(self.data_dir).resolve() if self.data_dir else None
        files = 0
        for source in removed:
            path = Path(source)
            if root is not None and path.parent == root and path.is_file():
                path.unlink()
                files += 1
        with self._lock:
            times = self._times()
            for source in removed:
                times.pop(source, None)
            self._save_times(times)
        return {'removed': removed, 'files': files}


def _short(error: str, path: Path) -> str:
    """Drop the full path a reader's error starts with (the page names the file)."""
    prefix = f'{path}: '
    return error[len(prefix):] if error.startswith(prefix) else error
