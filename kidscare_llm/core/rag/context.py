"""Retrieval-augmented prompts: memory items and passages into the latest user turn.

What the child said before (child memory) goes first, then the knowledge passages, as many as
fit the token budget, best first. The system prompt never changes, so its KV cache stays.
"""

from dataclasses import dataclass, field
from typing import Callable, List, Sequence

from kidscare_llm.core.rag.documents import Passage

CONTEXT_HEADER = '참고 자료 (답에 도움이 될 때만 써):'
MEMORY_HEADER = '아이가 전에 한 말 (날짜순 아님, 도움이 될 때만 써):'
QUESTION_HEADER = '말:'


@dataclass(frozen=True)
class Retrieved:
    """The passages and memory items chosen for one prompt, and the message carrying them."""

    passages: List[Passage]
    message: str
    memories: list = field(default_factory=list)  # core.memory.items.MemoryItem


def with_context(text: str, passages: Sequence[Passage], count: Callable[[str], int],
                 budget: int, memories: Sequence = (), memory_lines: Sequence[str] = ()
                 ) -> Retrieved:
    """Put as many memory lines, then passages, as fit budget tokens ahead of the user's words.

    memory_lines are the prompt lines of memories (item.prompt_line), in the same order.
    """
    used = 0
    kept_memories, kept_lines = [], []
    if memories:
        used += count(MEMORY_HEADER)
        for item, line in zip(memories, memory_lines):
            cost = count(line) + 4
            if used + cost <= budget:
                kept_memories.append(item)
                kept_lines.append(line)
                used += cost
    chosen: List[Passage] = []
    used += count(CONTEXT_HEADER) if passages else 0
    for passage in passages:
        cost = count(passage.text) + 4
        if used + cost > budget:
            continue
        chosen.append(passage)
        used += cost
    blocks = []
    if kept_lines:
        blocks.append('\n'.join([MEMORY_HEADER] + [f'- {line}' for line in kept_lines]))
    if chosen:
        blocks.append('\n'.join([CONTEXT_HEADER] +
                                [f'[{i}] {p.text}' for i, p in enumerate(chosen, 1)]))
    if not blocks:
        return Retrieved([], text)
    return Retrieved(chosen, '\n\n'.join(blocks) + f'\n\n{QUESTION_HEADER} {text}',
                     kept_memories)
