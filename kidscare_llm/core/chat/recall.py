"""What goes into a prompt besides the conversation: the child's memory and knowledge passages.

`Recall` searches both for each utterance (a failure in either is logged and skipped, never
silencing the robot), drops passages the safety check flags, and after the turn hands the
child's words to child memory. The engine owns one; the knowledge base and memory are optional.
"""

import datetime as dt
import logging
from typing import Callable, List, Optional

from kidscare_llm.core.rag.context import Retrieved, with_context

log = logging.getLogger(__name__)


class Recall:
    """Child memory + knowledge base search for one utterance, within a token budget."""

    def __init__(self, count: Callable[[str], int], knowledge=None, memory=None, safety=None):
        self.count = count
        self.knowledge = knowledge  # core.rag.knowledge.KnowledgeBase, or None (rag off)
        self.memory = memory  # core.memory.child_memory.ChildMemory, or None (memory off)
        self.safety = safety
        # a caregiver's per-child switch (core/caregiver/rules.py); everyone by default
        self.remembers: Callable[[str], bool] = lambda user: True

    def gather(self, user: str, text: str, top_k: int, memory_k: int,
               budget: int) -> Retrieved:
        """Return the memory items and passages for this utterance, and the message with them."""
        memories = self._memories(user, text, memory_k)
        passages = self._passages(text, top_k)
        today = dt.date.today()
        return with_context(text, passages, self.count, budget, memories,
                            [m.prompt_line(today) for m in memories])

    def remember(self, user: str, text: str, session: str, message_id: Optional[int],
                 verdict=None) -> None:
        """Keep what is worth keeping of the child's words (after the reply, off its path)."""
        if self.memory is None or not self.remembers(user):
            return
        try:
            items = self.memory.remember(user, text, session, message_id, verdict=verdict)
        except Exception as exc:  # memory is a help, never a reason to fail a turn
            log.error('user %s: memory not updated: %s', user, exc)
            return
        if items:
            log.info('user %s: remembered %s', user,
                     ', '.join(f'{i.kind} {i.id}' for i in items))

    def _memories(self, user: str, text: str, k: int) -> List:
        if self.memory is None or k <= 0 or not self.remembers(user):
            return []
        try:
            items = self.memory.recall(user, text, k)
        except Exception as exc:
            log.error('user %s: memory recall failed, answering without it: %s', user, exc)
            return []
        if items:
            log.info('recalled %s', ', '.join(f'memory {i.id} ({i.score:.2f})' for i in items))
        return items

    def _passages(self, text: str, top_k: int) -> List:
        if self.knowledge is None:
            return []
        try:
            passages = self.knowledge.search(text, top_k)
        except Exception as exc:  # a broken index must not silence the robot
            log.error('retrieval failed, answering without passages: %s', exc)
            return []
        if self.safety is not None:  # passages are data: one that gives orders is dropped
            kept = []
            for p in passages:
                verdict = self.safety.check_passage(p.text)
                if verdict.flagged:
                    log.warning('dropped passage %s#%s (%s)', p.source, p.position,
                                verdict.reason)
                else:
                    kept.append(p)
            passages = kept
        if passages:
            log.info('retrieved %s', ', '.join(f'{p.source}#{p.position} ({p.score:.2f})'
                                               for p in passages))
        return passages
