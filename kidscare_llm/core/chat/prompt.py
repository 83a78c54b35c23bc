"""Prompt assembly within the token budget: persona first, then history, then the new turn.

The persona (system prompt) is never dropped. When the history no longer fits, the oldest
whole turns are dropped down to a low-water mark, so the window start (and with it the cached
prompt prefix) then stays put for several turns instead of moving every turn.
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

from kidscare_llm.core.chat.sessions import StoredMessage

# Role markers a chat template adds around each message (ChatML, Llama-3: 4 to 6 tokens).
MESSAGE_OVERHEAD = 6
LOW_WATER = 0.75


@dataclass(frozen=True)
class PromptPlan:
    """The messages to send and how the history window moved to fit them."""

    messages: List[Dict[str, str]]
    window_start: int
    dropped: int
    prompt_tokens: int


def plan_prompt(system: str, history: Sequence[StoredMessage], count: Callable[[str], int],
                budget: int) -> PromptPlan:
    """Fit system + history into budget tokens; history[-1] is the new user turn, always kept."""
    if not history:
        raise ValueError('history must end with the new user message')
    sizes = [count(m.content) + MESSAGE_OVERHEAD for m in history]
    fixed = count(system) + MESSAGE_OVERHEAD + sizes[-1]
    total = fixed + sum(sizes[:-1])
    start = 0
    if total > budget:
        target = fixed + max(0, budget - fixed) * LOW_WATER
        last = len(history) - 1
        while start < last and (total > target or history[start].role != 'user'):
            total -= sizes[start]
            start += 1
    messages = [{'role': 'system', 'content': system}]
    messages += [{'role': m.role, 'content': m.content} for m in history[start:]]
    return PromptPlan(messages, history[start].id, start, total)
