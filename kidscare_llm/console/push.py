"""Push an alert to a parent's phone without any cloud of ours: a home webhook or a command.

Off by default. console.push_url posts each alert as JSON to a webhook on the home network
(a self-hosted ntfy or Home Assistant URL): its host must be a private, link-local or
loopback address, checked on every attempt after the name is resolved, so a push never goes
to the internet. console.push_command runs a local program per alert with the alert as JSON
on stdin. Either is retried with backoff (1 s, 2 s, 4 s ...) up to console.push_attempts
times; every failed attempt is kept in <data dir>/console/push.jsonl and shown on the Alerts
page. What is sent: category, child, time and the alert id; never what the child said.
"""

import ipaddress
import json
import logging
import os
from pathlib import Path
import queue
import shlex
import socket
import subprocess
import threading
import time
from typing import Callable, List, Optional
from urllib.parse import urlparse

from kidscare_llm.core.errors import ConfigError

log = logging.getLogger(__name__)
TIMEOUT_S = 10.0
TITLES = {'crisis': '위기 알림', 'abuse': '학대 의심 알림', 'personal_info': '개인정보 알림'}


class PushError(Exception):
    """One attempt failed (unreachable, refused, not on the home network, exit code)."""


def home_address(host: str) -> bool:
    """Say whether an address is on this robot or the home network (never the internet)."""
    try:
        address = ipaddress.ip_address(host.split('%')[0])
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def check_url(url: str) -> None:
    """Refuse a push_url that is not http(s), or names an address beyond the home network."""
    parts = urlparse(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise ConfigError(f'console.push_url {url!r}: expected http://<home address>/...')
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return  # a name (ntfy.lan): resolved and checked on every attempt
    if not home_address(parts.hostname):
        raise ConfigError(f'console.push_url {url!r}: {parts.hostname} is not on the home '
                          'network (a private, link-local or loopback address)')


def message(alert: dict) -> dict:
    """Return what a push says: no words of the child, only that an alert needs a look."""
    category = str(alert.get('category', ''))
    title = TITLES.get(category, '보호자 알림')
    return {'title': f'토리: {title}', 'category': category, 'user': alert.get('user', ''),
            'time': alert.get('time', ''), 'id': alert.get('id', ''),
            'message': f"{alert.get('user', '')}: {title}. 보호자 콘솔에서 확인해 주세요."}


class Pusher:
    """Sends each alert to the configured target on its own thread, retrying with backoff."""

    def __init__(self, url: str, command: str, attempts: int, log_path: Path,
                 backoff_s: float = 1.0, sleep: Callable[[float], None] = time.sleep):
        if url:
            check_url(url)
        self.url, self.command = url, command
        self.attempts, self.backoff_s, self.sleep = max(1, attempts), backoff_s, sleep
        self.log_path = Path(log_path)
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        if self.enabled:
            self._thread = threading.Thread(target=self._work, name='console-push',
                                            daemon=True)
            self._thread.start()

    @property
    def enabled(self) -> bool:
        """Say whether a push target is configured."""
        return bool(self.url or self.command)

    @property
    def target(self) -> str:
        """The URL, or the command's program: what the Alerts page names."""
        return self.url or (shlex.split(self.command)[0] if self.command else '')

    def push(self, alert: dict) -> None:
        """Queue one alert (returns at once)."""
        if self.enabled:
            self._queue.put(alert)

    def close(self) -> None:
        """Stop the worker after what is queued."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5.0)

    def _work(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            self.deliver(alert)

    def deliver(self, alert: dict) -> bool:
        """Send one alert now, retrying with backoff; return whether it got through."""
        body = json.dumps(message(alert), ensure_ascii=False)
        for attempt in range(1, self.attempts + 1):
            try:
                self._send_url(body) if self.url else self._run_command(body, alert)
                return True
            except PushError as exc:
                last = attempt == self.attempts
                self._record(alert, attempt, str(exc), last)
                log.warning('push of alert %s failed (attempt %d of %d): %s',
                            alert.get('id', '?'), attempt, self.attempts, exc)
                if not last:
                    self.sleep(self.backoff_s * 2 ** (attempt - 1))
        return False

    def _send_url(self, body: str) -> None:
        import http.client

        parts = urlparse(self.url)
        port = parts.port or (443 if parts.scheme == 'https' else 80)
        try:
            infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise PushError(f'{parts.hostname}: {exc}') from None
        address = infos[0][4][0]
        if not all(home_address(info[4][0]) for info in infos):
            raise PushError(f'{parts.hostname} resolves to {address}, not on the home network')
        if parts.scheme == 'https':  # the certificate names the host, not its address
            connection = http.client.HTTPSConnection(parts.hostname, port, timeout=TIMEOUT_S)
        else:  # the address just checked, so a second lookup cannot lead elsewhere
            connection = http.client.HTTPConnection(address, port, timeout=TIMEOUT_S)
        try:
            path = parts.path or '/'
            connection.request('POST', path + (f'?{parts.query}' if parts.query else ''),
                               body.encode('utf-8'),
                               {'Content-Type': 'application/json; charset=utf-8',
                                'Host': parts.netloc, 'Title': 'Tori caregiver alert'})
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            raise PushError(f'{self.url}: {exc}') from None
        finally:
            connection.close()
        if status >= 300:
            raise PushError(f'{self.url} answered HTTP {status}')

    def _run_command(self, body: str, alert: dict) -> None:
        env = dict(os.environ, KIDSCARE_ALERT_CATEGORY=str(alert.get('category', '')),
                   KIDSCARE_ALERT_USER=str(alert.get('user', '')),
                   KIDSCARE_ALERT_ID=str(alert.get('id', '')))
        try:
            done = subprocess.run(shlex.split(self.command), input=body, text=True, env=env,
                                  capture_output=True, timeout=TIMEOUT_S)
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            raise PushError(f'{self.target}: {exc}') from None
        if done.returncode != 0:
            raise PushError(f'{self.target} exited with {done.returncode}: '
                            + (done.stderr.strip().splitlines() or [''])[-1][:200])

    def _record(self, alert: dict, attempt: int, error: str, final: bool) -> None:
        entry = {'time': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'alert': alert.get('id', ''),
                 'user': alert.get('user', ''), 'target': self.target, 'attempt': attempt,
                 'final': final, 'error': error}
        with self._lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, 'a', encoding='utf-8') as out:
                out.write(json.dumps(entry, ensure_ascii=False) + '\n')

    def failures(self, n: int = 20) -> List[dict]:
        """Return the newest failed attempts, newest first (shown on the Alerts page)."""
        try:
            lines = self.log_path.read_text(encoding='utf-8').splitlines()[-n:]
        except OSError:
            return []
        out = []
        for line in reversed(lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out
