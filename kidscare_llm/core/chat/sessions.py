"""Multi-turn history per session, persisted in SQLite (WAL) under the data dir.

A user (a child, a face id) has a current session; "reset" starts a new one and keeps the old,
as the write-up's GUI did with user_0, user_1, ... Each message is committed as soon as it
exists, so a killed process loses at most the reply it was generating.
"""

from dataclasses import dataclass
from pathlib import Path
import sqlite3
import threading
import time
from typing import List, Optional, Tuple

from kidscare_llm.core.errors import ConfigError

SCHEMA = '''
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    window_start INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user, seq);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    created REAL NOT NULL,
    interrupted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_session ON messages(session_id, id);
CREATE TABLE IF NOT EXISTS reply_notes (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id),
    kind TEXT NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]'
);
'''


@dataclass(frozen=True)
class StoredMessage:
    """One message of a session's history."""

    id: int
    role: str
    content: str
    interrupted: bool = False


class SessionStore:
    """Sessions and their messages in one SQLite file; safe to share between threads.

    Long because it is the only code that touches sessions.sqlite3: the chat's reads and writes
    and the caregiver's queries (transcripts, talk time, deleting a child, retention) share one
    schema and one lock, so a change of schema is made in one place.
    """

    def __init__(self, path: Path, read_only: bool = False):
        self.path = Path(path)
        self._lock = threading.Lock()
        if read_only:  # the caregiver console: it reads what the chat node writes
            try:
                self._db = sqlite3.connect(f'file:{self.path}?mode=ro', uri=True,
                                           check_same_thread=False)
            except sqlite3.Error as exc:
                raise ConfigError(f'cannot read the session database {self.path}: {exc}; is '
                                  "this the chat node's data dir?") from None
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                       isolation_level=None)
            self._db.execute('PRAGMA journal_mode=WAL')
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f'cannot open the session database {self.path}: {exc}; make the '
                              'data dir writable or set data_dir') from None
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute('PRAGMA synchronous=FULL')
            self._db.executescript(SCHEMA)
            columns = {r[1] for r in self._db.execute('PRAGMA table_info(sessions)')}
            if 'summary' not in columns:  # a database from before memory.summarize
                self._db.execute('ALTER TABLE sessions ADD COLUMN summary TEXT NOT NULL '
                                 "DEFAULT ''")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _new_session(self, user: str) -> str:
        row = self._db.execute('SELECT MAX(seq) FROM sessions WHERE user = ?', (user,)).fetchone()
        seq = 0 if row[0] is None else row[0] + 1
        session_id = f'{user}_{seq}'
        self._db.execute('INSERT INTO sessions (id, user, seq, created) VALUES (?, ?, ?, ?)',
                         (session_id, user, seq, time.time()))
        return session_id

    def current(self, user: str) -> str:
        """Return the user's current session id, creating {user}_0 on first contact."""
        with self._lock:
            row = self._db.execute('SELECT id FROM sessions WHERE user = ? ORDER BY seq DESC '
                                   'LIMIT 1', (user,)).fetchone()
            return row[0] if row else self._new_session(user)

    def reset(self, user: str) -> str:
        """Start a new session for the user (the old one is kept) and return its id."""
        with self._lock:
            return self._new_session(user)

    def add(self, session_id: str, role: str, content: str, interrupted: bool = False) -> int:
        """Append one message (committed at once) and return its id."""
        with self._lock:
            cur = self._db.execute(
                'INSERT INTO messages (session_id, role, content, created, interrupted) '
                'VALUES (?, ?, ?, ?, ?)', (session_id, role, content, time.time(), interrupted))
            return int(cur.lastrowid)

    def recover(self) -> int:
        """Mark user turns left without a reply by a killed process as interrupted.

        Call it at start-up, before any reply runs. Such turns stay stored but leave the
        prompt, so the next prompt alternates user and assistant as chat templates expect.
        Return how many were marked.
        """
        with self._lock:
            cur = self._db.execute(
                "UPDATE messages SET interrupted = 1 WHERE role = 'user' AND interrupted = 0 "
                'AND id IN (SELECT MAX(id) FROM messages GROUP BY session_id)')
            return cur.rowcount

    def history(self, session_id: str, all_messages: bool = False) -> List[StoredMessage]:
        """Return the session's messages in order, from its window start unless all_messages.

        User turns that never got a reply (see recover()) are left out unless all_messages.
        """
        with self._lock:
            start = 0
            if not all_messages:
                row = self._db.execute('SELECT window_start FROM sessions WHERE id = ?',
                                       (session_id,)).fetchone()
                start = row[0] if row else 0
            rows = self._db.execute(
                'SELECT id, role, content, interrupted FROM messages WHERE session_id = ? '
                'AND id >= ? ORDER BY id', (session_id, start)).fetchall()
        messages = [StoredMessage(r[0], r[1], r[2], bool(r[3])) for r in rows]
        if all_messages:
            return messages
        return [m for m in messages if not (m.role == 'user' and m.interrupted)]

    def set_window_start(self, session_id: str, message_id: int) -> None:
        """Drop messages before message_id from the prompt window (they stay stored)."""
        with self._lock:
            self._db.execute('UPDATE sessions SET window_start = ? WHERE id = ?',
                             (message_id, session_id))

    def summary(self, session_id: str) -> str:
        """Return the summary of the messages that left the session's window ('' if none)."""
        with self._lock:
            row = self._db.execute('SELECT summary FROM sessions WHERE id = ?',
                                   (session_id,)).fetchone()
        return row[0] if row else ''

    def set_summary(self, session_id: str, summary: str) -> None:
        """Store the summary of the messages before the window start."""
        with self._lock:
            self._db.execute('UPDATE sessions SET summary = ? WHERE id = ?',
                             (summary, session_id))

    def sessions(self, user: Optional[str] = None) -> List[str]:
        """List session ids, oldest first, optionally of one user."""
        with self._lock:
            if user is None:
                rows = self._db.execute('SELECT id FROM sessions ORDER BY created, seq')
            else:
                rows = self._db.execute('SELECT id FROM sessions WHERE user = ? ORDER BY seq',
                                        (user,))
            return [r[0] for r in rows.fetchall()]

    def integrity_ok(self) -> bool:
        """Run SQLite's integrity check (after a crash, say)."""
        with self._lock:
            return self._db.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'

    def users(self) -> List[str]:
        """List every user id with a session, alphabetically."""
        with self._lock:
            rows = self._db.execute('SELECT DISTINCT user FROM sessions ORDER BY user')
            return [r[0] for r in rows.fetchall()]

    def session_rows(self, user: str) -> List[Tuple[str, float, int]]:
        """Return (session id, created, message count) of a user's sessions, newest first."""
        with self._lock:
            return self._db.execute(
                'SELECT s.id, s.created, COUNT(m.id) FROM sessions s LEFT JOIN messages m ON '
                'm.session_id = s.id WHERE s.user = ? GROUP BY s.id ORDER BY s.seq DESC',
                (user,)).fetchall()

    def transcript(self, session_id: str) -> List[tuple]:
        """Return every message of a session.

        Each is (id, role, content, created, interrupted, kind, sources JSON): kind and sources
        are what note_reply() recorded for a reply ('' and '[]' when nothing was).
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT m.id, m.role, m.content, m.created, m.interrupted, COALESCE(n.kind, ''), "
                "COALESCE(n.sources, '[]') FROM messages m LEFT JOIN reply_notes n ON "
                'n.message_id = m.id WHERE m.session_id = ? ORDER BY m.id', (session_id,))
            return [(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows.fetchall()]

    def note_reply(self, session_id: str, kind: str, sources: str) -> None:
        """Record the kind (answer, safety, rules ...) and sources (JSON) of the last reply."""
        with self._lock:
            row = self._db.execute('SELECT MAX(id) FROM messages WHERE session_id = ? AND '
                                   "role = 'assistant'", (session_id,)).fetchone()
            if row and row[0] is not None:
                self._db.execute('INSERT OR REPLACE INTO reply_notes (message_id, kind, sources) '
                                 'VALUES (?, ?, ?)', (row[0], kind, sources))

    def message_times(self, user: str, since: float = 0.0) -> List[float]:
        """Return when each of a user's messages was written (unix time), oldest first."""
        with self._lock:
            rows = self._db.execute(
                'SELECT m.created FROM messages m JOIN sessions s ON s.id = m.session_id '
                'WHERE s.user = ? AND m.created >= ? ORDER BY m.created', (user, since))
            return [r[0] for r in rows.fetchall()]

    def delete_user(self, user: str) -> Tuple[List[str], int]:
        """Delete every session and message of a user; return (session ids, messages deleted)."""
        with self._lock:
            ids = [r[0] for r in self._db.execute('SELECT id FROM sessions WHERE user = ?',
                                                  (user,)).fetchall()]
            self._db.execute('BEGIN IMMEDIATE')
            self._db.execute(
                'DELETE FROM reply_notes WHERE message_id IN (SELECT m.id FROM messages m JOIN '
                'sessions s ON s.id = m.session_id WHERE s.user = ?)', (user,))
            deleted = self._db.execute(
                'DELETE FROM messages WHERE session_id IN (SELECT id FROM sessions WHERE '
                'user = ?)', (user,)).rowcount
            self._db.execute('DELETE FROM sessions WHERE user = ?', (user,))
            self._db.execute('COMMIT')
        return ids, deleted

    def delete_before(self, cutoff: float) -> Tuple[int, List[str]]:
        """Delete messages written before cutoff; return (count, ids of sessions touched).

        A session left empty is deleted too unless it is its user's current one.
        """
        with self._lock:
            touched = [r[0] for r in self._db.execute(
                'SELECT DISTINCT session_id FROM messages WHERE created < ?', (cutoff,))]
            self._db.execute('BEGIN IMMEDIATE')
            self._db.execute('DELETE FROM reply_notes WHERE message_id IN (SELECT id FROM '
                             'messages WHERE created < ?)', (cutoff,))
            deleted = self._db.execute('DELETE FROM messages WHERE created < ?',
                                       (cutoff,)).rowcount
            self._db.execute(
                'DELETE FROM sessions WHERE created < ? AND id NOT IN (SELECT DISTINCT '
                'session_id FROM messages) AND seq < (SELECT MAX(seq) FROM sessions s2 WHERE '
                's2.user = sessions.user)', (cutoff,))
            self._db.execute('COMMIT')
        return deleted, touched
