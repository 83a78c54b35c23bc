"""Caregiver alerts: one JSON line per event in the data dir, and a hook the node publishes on."""

import hashlib
import json
import logging
from pathlib import Path
import threading
import time
from typing import Callable, Dict, List, Optional

from kidscare_llm.core.paths import append_line, replace_file

log = logging.getLogger(__name__)


class AlertLog:
    """Records crisis, abuse and personal-information events for the adults responsible."""

    def __init__(self, path: Optional[Path] = None):
        self.path = path
        self.on_alert: Optional[Callable[[dict], None]] = None  # the node publishes it

    def raise_alert(self, user: str, session_id: str, text: str, verdict) -> dict:
        """Write the alert (fsynced: it must survive a crash), log it and hand it on."""
        alert = {'time': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'user': user,
                 'session': session_id, 'category': verdict.category, 'action': verdict.action,
                 'utterance': text, 'reason': verdict.reason}
        if self.path is not None:
            try:
                append_line(self.path, alert)
            except OSError as exc:
                log.error('cannot record the caregiver alert in %s: %s', self.path, exc)
        log.warning('caregiver alert: %s', json.dumps(alert, ensure_ascii=False))
        if self.on_alert is not None:
            try:
                self.on_alert(alert)
            except Exception as exc:  # the child still gets the safe answer
                log.error('caregiver alert not delivered: %s', exc)
        return alert


def alert_id(alert: dict) -> str:
    """Name an alert by its content (alerts.jsonl has no ids; the same line, the same id)."""
    fields = [str(alert.get(k, '')) for k in ('time', 'user', 'session', 'category', 'utterance')]
    return hashlib.sha256('\x1f'.join(fields).encode('utf-8')).hexdigest()[:16]


def read_alerts(path: Path) -> List[dict]:
    """Return the alerts of an alerts.jsonl file, oldest first, each with its 'id'.

    A line that is not JSON (a crash mid-write) is skipped.
    """
    return [dict(alert, id=alert_id(alert)) for alert in _records(path)]


def remove_alerts(path: Path, keep: Callable[[dict], bool]) -> int:
    """Rewrite a JSONL file with only the records keep() accepts; return how many went.

    Written to a temporary file, fsynced and renamed, so a crash leaves the old or the new file.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding='utf-8').splitlines()
    except FileNotFoundError:
        return 0
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and not keep(record):
            continue
        kept.append(line)
    removed = len(lines) - len(kept)
    if removed:
        replace_file(path, ''.join(line + '\n' for line in kept))
    return removed


class AckLog:
    """Acknowledgements of alerts (who, when, a note) as JSON lines: they survive restarts."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def acknowledge(self, alert: dict, by: str, note: str = '') -> dict:
        """Record that an adult saw an alert (the latest record of an alert wins)."""
        ack = {'id': alert['id'], 'user': alert.get('user', ''), 'by': by, 'note': note,
               'time': time.strftime('%Y-%m-%dT%H:%M:%S%z')}
        with self._lock:
            append_line(self.path, ack)
        return ack

    def all(self) -> Dict[str, dict]:
        """Return {alert id: its latest acknowledgement}."""
        with self._lock:
            return {a['id']: a for a in _records(self.path) if 'id' in a}

    def forget_user(self, user: str) -> int:
        """Drop the acknowledgements (and notes) about one child; return how many."""
        with self._lock:
            return remove_alerts(self.path, lambda a: a.get('user') != user)


def _records(path: Path) -> List[dict]:
    """Return the JSON objects of a JSONL file; lines that are not one are skipped."""
    out = []
    try:
        lines = Path(path).read_text(encoding='utf-8').splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out
