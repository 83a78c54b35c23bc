"""What the pages show, read from the chat node's files without changing them.

The session database is opened read-only; alerts.jsonl is read as it is; the console's own
acknowledgements sit beside them in console/acks.jsonl.
"""

import datetime as dt
import json
from pathlib import Path
from typing import List, Optional

from kidscare_llm.core.caregiver.usage import per_day
from kidscare_llm.core.chat.alerts import read_alerts
from kidscare_llm.core.chat.sessions import SessionStore

CHART_DAYS = 14


class Reader:
    """Read-only views of the chat node's sessions and alerts under one data dir."""

    def __init__(self, data_dir: Path, acks):
        self.data_dir = Path(data_dir)
        self.acks = acks

    def _store(self) -> Optional[SessionStore]:
        path = self.data_dir / 'sessions.sqlite3'
        return SessionStore(path, read_only=True) if path.is_file() else None

    def alerts(self) -> List[dict]:
        """Return every alert, newest first, with the robot's answer and its acknowledgement."""
        alerts = read_alerts(self.data_dir / 'alerts.jsonl')
        acks = self.acks.all()
        store = self._store()
        try:
            for alert in alerts:
                alert['ack'] = acks.get(alert['id'])
                alert['answer'] = _answer(store, alert) if store else ''
        finally:
            if store:
                store.close()
        return list(reversed(alerts))

    def unacknowledged(self) -> int:
        """Return how many alerts nobody acknowledged yet (the banner on every page)."""
        acks = self.acks.all()
        return sum(1 for a in read_alerts(self.data_dir / 'alerts.jsonl') if a['id'] not in acks)

    def children(self) -> List[dict]:
        """Return each child with their session count, minutes today and last message time."""
        store = self._store()
        if store is None:
            return []
        today = dt.date.today()
        try:
            out = []
            for user in store.users():
                times = store.message_times(user)
                out.append({'user': user, 'sessions': len(store.session_rows(user)),
                            'today': per_day(times, 1, today)[0][1],
                            'last': times[-1] if times else None})
            return out
        finally:
            store.close()

    def child(self, user: str, session: Optional[str]) -> Optional[dict]:
        """Return one child's sessions, 14-day minutes and one transcript (newest by default)."""
        store = self._store()
        if store is None:
            return None
        try:
            sessions = store.session_rows(user)
            if not sessions:
                return None
            ids = [s[0] for s in sessions]
            chosen = session if session in ids else ids[0]
            flagged = {a['session'] for a in read_alerts(self.data_dir / 'alerts.jsonl')
                       if a.get('user') == user}
            messages = []
            for mid, role, text, when, cut, kind, sources in store.transcript(chosen):
                messages.append({'id': mid, 'role': role, 'text': text, 'time': when,
                                 'interrupted': cut, 'kind': kind,
                                 'sources': json.loads(sources or '[]')})
            _mark_safety(messages)
            days = per_day(store.message_times(user), CHART_DAYS, dt.date.today())
            return {'user': user, 'sessions': sessions, 'session': chosen, 'messages': messages,
                    'days': days, 'flagged': flagged}
        finally:
            store.close()


def _mark_safety(messages: List[dict]) -> None:
    """Mark a child's turn that got a safety answer, and that answer."""
    for before, after in zip(messages, messages[1:]):
        if after['role'] == 'assistant' and after['kind'] == 'safety' and before['role'] == 'user':
            before['kind'] = 'safety'


def _answer(store: SessionStore, alert: dict) -> str:
    """Return what the robot answered to an alert's utterance ('' if not found)."""
    rows = store.transcript(alert.get('session', ''))
    for row, after in zip(rows, rows[1:]):
        if row[1] == 'user' and row[2] == alert.get('utterance') and after[1] == 'assistant':
            return after[2]
    return ''
