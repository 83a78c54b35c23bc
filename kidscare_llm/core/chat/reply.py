"""A finished reply: what the engine hands back for one utterance."""

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class Reply:
    """A finished reply: its text, the session it belongs to, and how it ended."""

    text: str
    session_id: str
    kind: str = 'answer'  # answer | refused | error | safety
    interrupted: bool = False
    sentences: List[str] = field(default_factory=list)
    pieces: int = 0
    prompt_tokens: int = 0
    dropped_messages: int = 0
    sources: List[dict] = field(default_factory=list)
    prompt_evaluated: Optional[int] = None  # prompt tokens the model had to run (llama.cpp)
