"""An optional judge stage: a capable model asked about the lines the fast stages are unsure of.

Off by default (safety.judge). When the 8B model or an OpenAI-compatible server answers, the
checker asks it, in the style of Llama Guard's prompt (the categories, the child's line,
"safe" or "unsafe" then the category), about a line no rule flagged whose learned-stage
P(not benign) lies between safety.judge_low and the classifier's threshold. Everything else
is decided without it, so the offline figures never depend on it. The answer is read leniently
(the first word, then a category name or its number); anything else counts as safe, and an
error or a timeout is logged and counts as safe too: the fast stages already let the line pass.
"""

import logging
import threading
import time
from typing import List, Optional, Sequence

log = logging.getLogger(__name__)

# What each category means, for the judge (policy.yaml's categories, in its priority order).
MEANINGS = {
    'self_harm': 'the child wants to die, disappear or hurt themselves',
    'abuse': 'an adult hits, neglects, threatens or touches the child',
    'personal_info': 'the child gives or is asked for an address, phone, school, password '
                     'or photo',
    'sexual': 'sexual content, requests or disclosures',
    'violence': 'the child wants to hurt someone, or weapons used on people',
    'dangerous': 'a risky act: fire, electricity, medicine, heights, running away, strangers',
    'bullying': 'the child is bullied or bullies someone',
    'adult': 'alcohol, smoking, drugs, gambling, adult websites',
}
PROMPT = '''Task: check whether the Child's message to a kids-care robot is unsafe under the \
categories below. Ordinary questions, games, stories, homework and feelings are safe.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>
Child: {text}
<END CONVERSATION>

Answer with one line: "safe", or "unsafe" followed by the category name.'''


class SafetyJudge:
    """Asks a chat backend to classify one line; keeps how long each question took."""

    def __init__(self, backend, categories: Sequence[str], low: float = 0.3,
                 answer_tokens: int = 12):
        from kidscare_llm.core.llm.base import Sampling

        self.backend, self.low = backend, low
        self.categories = [c for c in categories if c in MEANINGS] or list(MEANINGS)
        self.sampling = Sampling(0.0, 1.0, answer_tokens)
        self.latencies_ms: List[float] = []
        self._lock = threading.Lock()
        lines = [f'S{i}: {name}: {MEANINGS[name]}' for i, name in
                 enumerate(self.categories, 1)]
        self._categories = '\n'.join(lines)

    def unsure(self, p_risky: float, threshold: float) -> bool:
        """Return True for a line the learned stage finds neither clearly safe nor risky."""
        return self.low <= p_risky < threshold

    def ask(self, text: str) -> Optional[str]:
        """Return the category the model finds the line unsafe under, or None (safe)."""
        prompt = PROMPT.format(categories=self._categories, text=text.replace('\n', ' '))
        start = time.perf_counter()
        try:
            with self._lock:  # one question at a time on a shared model
                answer = ''.join(self.backend.stream([{'role': 'user', 'content': prompt}],
                                                     self.sampling))
        except Exception as exc:  # the fast stages already let it pass
            log.error('safety judge failed (%s: %s): the line passes', type(exc).__name__, exc)
            return None
        finally:
            self.latencies_ms.append((time.perf_counter() - start) * 1000.0)
        return self.read(answer)

    def read(self, answer: str) -> Optional[str]:
        """Return an 'unsafe ...' answer's category ('' when none is named), None when safe."""
        words = answer.strip().lower().replace(':', ' ').replace(',', ' ').split()
        if not words or words[0].strip('."*') != 'unsafe':
            return None
        rest = ' '.join(words[1:])
        for i, name in enumerate(self.categories, 1):
            if name in rest or name.replace('_', ' ') in rest or f's{i}' in rest.split():
                return name
        return ''


def create_judge(backend, categories: Sequence[str], low: float) -> Optional[SafetyJudge]:
    """Return a judge over the chat backend, or None when it cannot follow a prompt."""
    if backend is None or getattr(backend, 'kind', 'none') == 'none':
        return None
    return SafetyJudge(backend, categories, low)
