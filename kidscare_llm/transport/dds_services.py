"""std_srvs/Trigger over plain DDS: a server that answers each request once, and its client.

A ROS 2 service /s is the request topic rq/sRequest and the reply topic rr/sReply; each sample
starts with a (client_guid, sequence_number) header the server copies into its reply. Replies
can be lost to discovery timing (each direction matches on its own), so a client re-sends and a
server answers a repeated request from a cache rather than running it twice.
"""

from collections import OrderedDict
import logging
import queue
import random
import threading
import time
from typing import Any, Callable, Optional, Tuple

from kidscare_llm.transport.base import TransportError, wait_until
from kidscare_llm.transport.dds_types import Trigger_Request_, Trigger_Response_

RESEND_S = 1.0  # a service request without a reply is sent again after this long
ANSWERS_KEPT = 64  # replies remembered per service for clients that re-send


class ServiceThread:
    """Run service handlers one at a time off the DDS receive thread (a listener must not block).

    quiet() tells whether a failed job is expected (the transport is shutting down).
    """

    def __init__(self, name: str, stop: threading.Event, quiet: Callable[[], bool],
                 log: logging.Logger):
        self._jobs: 'queue.Queue[Callable[[], None]]' = queue.Queue()
        self._stop = stop
        self._quiet = quiet
        self._log = log
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def put(self, job: Callable[[], None]) -> None:
        """Queue job to run on the service thread."""
        self._jobs.put(job)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                job()
            except Exception as exc:  # a failed reply must not end the service thread
                if not self._quiet():
                    self._log.error('service reply failed: %s', exc)


class TriggerServer:
    """Answer requests with run(); idempotent per (client_guid, sequence_number).

    A client that re-sends a request whose reply it missed gets the same reply again, not a
    second run. run() returns (success, message), or None when it failed (already logged).
    """

    def __init__(self, writer: Any, run: Callable[[], Optional[Tuple[bool, str]]]):
        self._writer = writer
        self._run = run
        self._answered: 'OrderedDict[Tuple[int, int], Tuple[bool, str]]' = OrderedDict()

    def answer(self, req: Trigger_Request_) -> None:
        """Run the handler once for this request (service thread) and write the reply."""
        key = (req.client_guid, req.sequence_number)
        if key not in self._answered:
            result = self._run()
            self._answered[key] = result if result is not None else \
                (False, 'internal error, see log')
            while len(self._answered) > ANSWERS_KEPT:
                self._answered.popitem(last=False)
        ok, message = self._answered[key]
        # The caller's reply reader may not be matched by our writer yet (discovery runs per
        # direction): wait briefly so the reply is not written to nobody.
        wait_until(lambda: self._writer.get_matched_subscriptions(), 2.0)
        self._writer.write(Trigger_Response_(client_guid=req.client_guid,
                                             sequence_number=req.sequence_number,
                                             success=bool(ok), message=str(message)))


class TriggerClient:
    """One service's request writer and reply reader, with our guid and sequence number."""

    def __init__(self, name: str, writer: Any, reader: Any):
        self.name = name
        self.writer = writer
        self.reader = reader
        self.guid = random.getrandbits(63)
        self.seq = 0

    def call(self, timeout: float) -> Tuple[bool, str]:
        """Wait for the server, send, and re-send every RESEND_S until our reply comes."""
        deadline = time.monotonic() + timeout
        matched = (lambda: self.writer.get_matched_subscriptions()
                   and self.reader.get_matched_publications())
        if not wait_until(matched, timeout):
            raise TransportError(f'service {self.name} not available within {timeout:.0f} s')
        self.seq += 1
        request = Trigger_Request_(self.guid, self.seq)
        sent = float('-inf')
        while time.monotonic() < deadline:
            if time.monotonic() - sent >= RESEND_S:
                self.writer.write(request)
                sent = time.monotonic()
            for reply in self.reader.take(N=16):
                if reply.client_guid == self.guid and reply.sequence_number == self.seq:
                    return bool(reply.success), reply.message
            time.sleep(0.01)
        raise TransportError(f'service {self.name} did not answer within {timeout:.0f} s')
