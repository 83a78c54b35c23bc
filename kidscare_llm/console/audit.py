"""The audit log: every caregiver action (who, from where, what, when) as one JSON line."""

import json
from pathlib import Path
import threading
import time
from typing import List

from kidscare_llm.core.paths import append_line


class AuditLog:
    """Append-only record of what adults did in the console, shown on the Data page."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, who: str, address: str, action: str, target: str = '') -> dict:
        """Append one action (fsynced)."""
        entry = {'time': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'who': who, 'from': address,
                 'action': action, 'target': target}
        with self._lock:
            append_line(self.path, entry)
        return entry

    def recent(self, n: int = 100) -> List[dict]:
        """Return the newest n entries, newest first."""
        try:
            lines = self.path.read_text(encoding='utf-8').splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in reversed(lines[-n:]):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out
