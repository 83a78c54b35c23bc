"""Retrieval-augmented prompts: passages from the knowledge base into the latest user turn."""

from dataclasses import dataclass
from typing import Callable, List, Sequence

from kidscare_llm.core.rag.documents import Passage

CONTEXT_HEADER = '참고 자료 (답에 도움이 될 때만 써):'
QUESTION_HEADER = '말:'


@dataclass(frozen=True)
class Retrieved:
    """The passages chosen for one prompt and the user message that carries them."""

    passages: List[Passage]
    message: str


def with_context(text: str, passages: Sequence[Passage], count: Callable[[str], int],
                 budget: int) -> Retrieved:
    """Put as many passages as fit budget tokens ahead of the user's words, best first."""
    chosen: List[Passage] = []
    used = count(CONTEXT_HEADER)
    for passage in passages:
        cost = count(passage.text) + 4
        if used + cost > budget:
            continue
        chosen.append(passage)
        used += cost
    if not chosen:
        return Retrieved([], text)
    lines = [CONTEXT_HEADER] + [f'[{i}] {p.text}' for i, p in enumerate(chosen, 1)]
    return Retrieved(chosen, '\n'.join(lines) + f'\n\n{QUESTION_HEADER} {text}')
