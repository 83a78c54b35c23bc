"""Retrieval-augmented prompts: passages from the knowledge base into the latest user turn."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Mapping, Sequence

from kidscare_llm.core import paths
from kidscare_llm.core.rag.knowledge import KnowledgeBase, Passage

CONTEXT_HEADER = '참고 자료 (답에 도움이 될 때만 써):'
QUESTION_HEADER = '말:'


@dataclass(frozen=True)
class Retrieved:
    """The passages chosen for one prompt and the user message that carries them."""

    passages: List[Passage]
    message: str


def build_knowledge_base(params: Mapping[str, Any], name: str = '') -> KnowledgeBase:
    """Create the knowledge base the parameters describe (embedder, analyzer, Chroma)."""
    from kidscare_llm.core.rag.embeddings import create_embedder
    from kidscare_llm.core.rag.korean import KoreanAnalyzer

    return KnowledgeBase(
        paths.data_dir(params['data_dir']) / 'knowledge', name or params['rag.name'],
        create_embedder(params['rag.embedder']), KoreanAnalyzer(),
        chroma_url=params['rag.chroma_url'], chunk_chars=params['rag.chunk_chars'],
        overlap=params['rag.chunk_overlap'], fusion_weight=params['rag.fusion_weight'],
        candidates=params['rag.candidates'], min_dense=params['rag.min_dense'],
        min_bm25=params['rag.min_bm25'])


def source_paths(params: Mapping[str, Any]) -> List[Path]:
    """Return the paths listed in rag.sources."""
    return [Path(p.strip()).expanduser() for p in params['rag.sources'].split(',') if p.strip()]


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
