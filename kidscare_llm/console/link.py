"""How the console asks the chat node to act, matched by request id.

A request goes out on caregiver_command, its answer comes back on caregiver_command_result
(the protocol: core/caregiver/commands.py).
"""

import json
import logging
import queue
import threading
from typing import Callable, Dict, Optional

from kidscare_llm.core.caregiver.commands import COMMAND_TOPIC, make_request, RESULT_TOPIC
from kidscare_llm.core.errors import KidscareError

log = logging.getLogger(__name__)


class LinkError(KidscareError):
    """The chat node refused a command, or did not answer in time."""


class TransportLink:
    """Commands over the node's transport (rclpy or plain DDS); one thread may wait per call."""

    def __init__(self, transport, timeout_s: float):
        self.timeout_s = timeout_s
        self._pending: Dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        self._publish = transport.publisher(COMMAND_TOPIC, 'std_msgs/msg/String')
        self._transport = transport
        transport.subscribe(RESULT_TOPIC, 'std_msgs/msg/String', self._on_result)

    def _on_result(self, text: str) -> None:
        try:
            answer = json.loads(text)
        except ValueError:
            return
        with self._lock:
            waiting = self._pending.get(answer.get('id'))
        if waiting is not None:
            waiting.put(answer)

    def call(self, action: str, progress: Optional[Callable[[dict], None]] = None,
             timeout: Optional[float] = None, **args):
        """Ask the chat node to do one action; return its result or raise LinkError."""
        request = make_request(action, **args)
        answers: queue.Queue = queue.Queue()
        with self._lock:
            self._pending[request['id']] = answers
        try:
            if not self._transport.wait_for_subscribers(COMMAND_TOPIC, 'std_msgs/msg/String',
                                                        min(5.0, self.timeout_s)):
                raise LinkError('the chat node is not running (nobody listens on '
                                f'{COMMAND_TOPIC}); start it, then try again')
            self._publish(json.dumps(request, ensure_ascii=False))
            while True:
                try:
                    answer = answers.get(timeout=timeout or self.timeout_s)
                except queue.Empty:
                    raise LinkError(f'the chat node did not answer {action} within '
                                    f'{timeout or self.timeout_s:.0f} s') from None
                if answer.get('final', True):
                    break
                if progress is not None:
                    progress(answer)
        finally:
            with self._lock:
                self._pending.pop(request['id'], None)
        if not answer.get('ok'):
            raise LinkError(answer.get('error') or 'refused')
        return answer.get('result')


class DeskLink:
    """Commands handed straight to a CaregiverDesk in this process (tests, one-process use)."""

    def __init__(self, desk):
        self.desk = desk

    def call(self, action: str, progress: Optional[Callable[[dict], None]] = None,
             timeout: Optional[float] = None, **args):
        """Do one action on the desk; return its result or raise LinkError."""
        answer = self.desk.handle(json.dumps(make_request(action, **args)), progress=progress)
        if not answer.get('ok'):
            raise LinkError(answer.get('error') or 'refused')
        return answer.get('result')
