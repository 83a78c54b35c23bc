"""Sentence chunks from a token stream, so speech can start after the first sentence."""

import re
import time
from typing import Callable, List, Optional

# A sentence ends at . ! ? (and their full-width forms), an ellipsis or ~ followed by space,
# or at a line break. "3.5" and "e.g.x" do not end one: the mark must be followed by space.
_END = re.compile(r'(?<=[.!?。！？…~])[\"\'”’)\]]*\s+|\n+')


class SentenceChunker:
    """Feed text pieces; get back each sentence as soon as it is complete."""

    def __init__(self, max_chars: int = 160):
        self.max_chars = max_chars
        self._buf = ''

    def feed(self, piece: str) -> List[str]:
        """Add a piece of text and return the sentences it completed."""
        self._buf += piece
        out: List[str] = []
        while True:
            match = _END.search(self._buf)
            if match is None:
                break
            sentence, self._buf = self._buf[:match.end()].strip(), self._buf[match.end():]
            if sentence:
                out.append(sentence)
        while len(self._buf) > self.max_chars:  # a run-on sentence: cut at the last comma/space
            cut = max(self._buf.rfind(',', 0, self.max_chars), self._buf.rfind(' ', 0,
                                                                               self.max_chars))
            cut = cut + 1 if cut > 0 else self.max_chars
            out.append(self._buf[:cut].strip())
            self._buf = self._buf[cut:].lstrip()
        return [s for s in out if s]

    def flush(self) -> List[str]:
        """Return what is left at the end of the stream."""
        rest, self._buf = self._buf.strip(), ''
        return [rest] if rest else []


class PieceBatcher:
    """Pass text pieces on at most every interval_s, the first one at once (for token UIs).

    A token topic at 100 tokens/s costs the model CPU on a small board; UIs need ~20 updates/s.
    """

    def __init__(self, send: Callable[[str], None], interval_s: float = 0.05):
        self._send = send
        self._interval = interval_s
        self._buf = ''
        self._last = None

    def add(self, piece: str) -> None:
        """Buffer a piece; send the buffer if it is the first or interval_s has passed."""
        self._buf += piece
        now = time.monotonic()
        if self._last is None or now - self._last >= self._interval:
            self.flush(now)

    def flush(self, now: Optional[float] = None) -> None:
        """Send whatever is buffered."""
        if self._buf:
            self._send(self._buf)
            self._buf = ''
            self._last = time.monotonic() if now is None else now
