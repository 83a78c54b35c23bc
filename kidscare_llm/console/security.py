"""Who may use the console: the password (scrypt hash), login sessions, CSRF, login limits.

The console listens on loopback unless console.bind says otherwise, and refuses any other
address until a password is set (`kidscare-llm console --set-password`); the hash lives in the
data dir (console/password), never in a parameter file.
"""

from dataclasses import dataclass
import hashlib
import hmac
import ipaddress
import json
import os
from pathlib import Path
import secrets
import threading
import time
from typing import Dict, List, Optional

from kidscare_llm.core.errors import ConfigError

SCRYPT = {'n': 2 ** 14, 'r': 8, 'p': 1}
MIN_PASSWORD = 8
LOGIN_WINDOW_S = 300.0
COOKIE = 'kidscare_console'


def is_loopback(host: str) -> bool:
    """Return True when an address to listen on is reachable from this computer only."""
    if host in ('localhost', 'ip6-localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PasswordFile:
    """The caregiver password as a salted scrypt hash in one JSON file (mode 0600)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def is_set(self) -> bool:
        """Return True once a password was set."""
        return self.path.is_file()

    def set(self, password: str) -> None:
        """Hash and store a new password (at least MIN_PASSWORD characters)."""
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f'the console password needs at least {MIN_PASSWORD} characters')
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(password.encode('utf-8'), salt=salt, **SCRYPT)
        record = {'scheme': 'scrypt', **SCRYPT, 'salt': salt.hex(), 'hash': digest.hex()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix('.tmp')
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w', encoding='utf-8') as out:
            json.dump(record, out)
        tmp.replace(self.path)

    def verify(self, password: str) -> bool:
        """Return True when the password matches the stored hash (constant-time compare)."""
        try:
            record = json.loads(self.path.read_text(encoding='utf-8'))
            digest = hashlib.scrypt(password.encode('utf-8'), salt=bytes.fromhex(record['salt']),
                                    n=record['n'], r=record['r'], p=record['p'])
        except (OSError, ValueError, KeyError):
            return False
        return hmac.compare_digest(digest.hex(), record['hash'])


def check_bind(bind: str, passwords: PasswordFile) -> None:
    """Refuse to listen beyond loopback while no password is set (one line says what to do)."""
    if not is_loopback(bind) and not passwords.is_set():
        raise ConfigError(f'console.bind={bind} would open the caregiver console to the '
                          'network, but no password is set: run `kidscare-llm console '
                          '--set-password` first, or keep console.bind=127.0.0.1')


@dataclass
class Session:
    """One browser: its CSRF token, who logged in (None: nobody yet) and until when."""

    csrf: str
    who: Optional[str]
    expires: float


class Sessions:
    """Login sessions kept in memory (a restart logs everyone out), keyed by a random cookie."""

    def __init__(self, hours: float):
        self.seconds = hours * 3600.0
        self._items: Dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, token: Optional[str]) -> Optional[Session]:
        """Return the live session of a cookie value, or None."""
        now = time.time()
        with self._lock:
            for key in [k for k, s in self._items.items() if s.expires < now]:
                del self._items[key]
            return self._items.get(token or '')

    def new(self, who: Optional[str] = None) -> str:
        """Start a session and return its cookie value (a fresh one on every login)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._items[token] = Session(secrets.token_urlsafe(32), who,
                                         time.time() + self.seconds)
        return token

    def drop(self, token: Optional[str]) -> None:
        """End a session (log out)."""
        with self._lock:
            self._items.pop(token or '', None)


class LoginLimiter:
    """At most `attempts` failed logins per address in LOGIN_WINDOW_S seconds."""

    def __init__(self, attempts: int):
        self.attempts = attempts
        self._failures: Dict[str, List[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str) -> List[float]:
        now = time.monotonic()
        kept = [t for t in self._failures.get(address, []) if now - t < LOGIN_WINDOW_S]
        self._failures[address] = kept
        return kept

    def blocked(self, address: str) -> bool:
        """Return True while an address has used up its attempts."""
        with self._lock:
            return len(self._recent(address)) >= self.attempts

    def failed(self, address: str) -> None:
        """Count one failed login."""
        with self._lock:
            self._recent(address).append(time.monotonic())

    def succeeded(self, address: str) -> None:
        """Forget an address's failures."""
        with self._lock:
            self._failures.pop(address, None)
