"""What every chat backend offers: stream a reply from messages, count tokens, describe itself.

Backends subclass `Backend` and say what they can do with flags instead of being probed with
getattr: `kind`, `exact_tokens` (count_tokens uses the model's tokenizer), `keeps_kv` (forget,
warm and checkpoint do something). The base class's hooks are no-ops, so the engine calls them
unconditionally.
"""

from dataclasses import dataclass
import threading
from typing import Dict, Iterator, Optional, Sequence

Message = Dict[str, str]


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one reply (the node's come from llm.temperature, top_p, max_tokens)."""

    temperature: float
    top_p: float
    max_tokens: int


class Backend:
    """A chat model that streams text pieces; subclasses implement stream and count_tokens."""

    kind = 'none'
    exact_tokens = False  # count_tokens is the model's own tokenizer, not an estimate
    keeps_kv = False  # forget/warm/checkpoint manage a KV cache
    gpu = False
    n_ctx = 4096
    model_name = ''
    prompt_evaluated: Optional[int] = None  # prompt tokens the last reply had to run

    def describe(self) -> str:
        """Say which model runs where (start-up log, ~/describe, the chat window)."""
        return f'{self.kind} {self.model_name}'

    def count_tokens(self, text: str) -> int:
        """Return the number of tokens of a text (exact or estimated, see exact_tokens)."""
        raise NotImplementedError

    def stream(self, messages: Sequence[Message], sampling: Sampling,
               cancel: Optional[threading.Event] = None,
               session: Optional[str] = None) -> Iterator[str]:
        """Yield reply pieces; stop at the end, max_tokens, or the next piece after cancel."""
        raise NotImplementedError

    def forget(self, session: str) -> None:
        """Drop what is cached for a session (its history changed); no-op without a cache."""

    def warm(self, system_prompt: str) -> int:
        """Evaluate the persona ahead of the first reply; return tokens evaluated (0: none)."""
        return 0

    def checkpoint(self) -> None:
        """Use idle time to save the active session's state; no-op without a cache."""
