"""A child's data: export it, delete all of it, and delete what is older than the retention.

These run in the chat node (it owns the session database, the alerts file, the KV snapshots
and the memory store), asked by the caregiver console through commands.py.
"""

import datetime as dt
import json
import logging
from pathlib import Path
import time
from typing import Optional

from kidscare_llm.core.chat.alerts import read_alerts, remove_alerts

log = logging.getLogger(__name__)
ALERT_TIME = '%Y-%m-%dT%H:%M:%S%z'


def export_child(store, alerts_path: Path, memory, rules, user: str) -> dict:
    """Return everything kept about one child as one JSON-ready dict.

    Sessions with every message (role, text, time), their summaries, the caregiver alerts, the
    memory items (superseded ones too) and the child's own rule.
    """
    sessions = []
    for session_id, created, _ in reversed(store.session_rows(user)):
        sessions.append({
            'id': session_id, 'created': created, 'summary': store.summary(session_id),
            'messages': [{'id': i, 'role': role, 'content': text, 'created': when,
                          'interrupted': cut, 'kind': kind, 'sources': json.loads(sources)}
                         for i, role, text, when, cut, kind, sources
                         in store.transcript(session_id)]})
    items = [m.to_dict() for m in memory.list(user, history=True)] if memory is not None else []
    return {'user': user, 'exported_at': time.strftime(ALERT_TIME), 'sessions': sessions,
            'alerts': [a for a in read_alerts(alerts_path) if a.get('user') == user],
            'memory': items, 'rules': rules.to_dict()['rules'].get(user)}


def delete_child(store, alerts_path: Path, backend, memory, rules, user: str) -> dict:
    """Delete one child entirely; return how many of each kind of record went.

    Sessions, messages, alerts, KV snapshots (RAM and disk), memory items and their rule.
    """
    sessions, messages = store.delete_user(user)
    for session_id in sessions:  # the snapshot in RAM and its spilled file on disk
        backend.forget(session_id)
    alerts = remove_alerts(alerts_path, lambda a: a.get('user') != user)
    items = memory.clear(user) if memory is not None else 0
    rules.remove(user)
    done = {'user': user, 'sessions': len(sessions), 'messages': messages, 'alerts': alerts,
            'memory': items}
    log.warning('caregiver deleted child %s entirely: %s', user, done)
    return done


def alert_time(alert: dict) -> Optional[float]:
    """Return an alert's unix time, or None when its time field cannot be read."""
    try:
        return dt.datetime.strptime(alert.get('time', ''), ALERT_TIME).timestamp()
    except (TypeError, ValueError):
        return None


def apply_retention(store, alerts_path: Path, backend, days: int, now: float) -> dict:
    """Delete messages and alerts older than `days` days (0: keep everything); say how many."""
    if days <= 0:
        return {'messages': 0, 'alerts': 0, 'days': days}
    cutoff = now - days * 86400.0
    messages, touched = store.delete_before(cutoff)
    for session_id in touched:  # their KV snapshots no longer match the stored history
        backend.forget(session_id)

    def recent(alert: dict) -> bool:
        when = alert_time(alert)
        return when is None or when >= cutoff
    alerts = remove_alerts(alerts_path, recent)
    if messages or alerts:
        log.info('retention (%d days): deleted %d message(s) and %d alert(s)', days, messages,
                 alerts)
    return {'messages': messages, 'alerts': alerts, 'days': days}
