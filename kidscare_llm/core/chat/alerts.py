"""Caregiver alerts: one JSON line per event in the data dir, and a hook the node publishes on."""

import json
import logging
import os
from pathlib import Path
import time
from typing import Callable, Optional

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
                with open(self.path, 'a', encoding='utf-8') as out:
                    out.write(json.dumps(alert, ensure_ascii=False) + '\n')
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                log.error('cannot record the caregiver alert in %s: %s', self.path, exc)
        log.warning('caregiver alert: %s', json.dumps(alert, ensure_ascii=False))
        if self.on_alert is not None:
            try:
                self.on_alert(alert)
            except Exception as exc:  # the child still gets the safe answer
                log.error('caregiver alert not delivered: %s', exc)
        return alert
