"""memory.extract: llm | both: a capable model (the 8B, an OpenAI-compatible server) adds facts.

The model is asked for the facts of one utterance as JSON lines. Only a fact whose words are
the child's own (found in the utterance) and whose kind is known is kept, so a model cannot
put words in a child's mouth; anything else, or a failure, gives nothing and the rules stand.
"""

import datetime as dt
import json
import logging
import re
from typing import List

from kidscare_llm.core.errors import LLMError
from kidscare_llm.core.llm.base import Sampling
from kidscare_llm.core.memory.dates import resolve_date
from kidscare_llm.core.memory.items import KINDS
from kidscare_llm.core.memory.rules import Candidate

log = logging.getLogger(__name__)
SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=160)
INSTRUCTION = (
    '아이가 한 말에서 오래 기억할 만한 사실만 골라. 좋아하는 것과 싫어하는 것, 알레르기와 '
    '건강, 가족, 반려동물, 친구, 무서워하는 것, 취미와 배우는 것, 학교와 다가올 일, 잃어버린 '
    '것과 갖고 싶은 것. 인사, 잡담, 질문, 부탁은 빼. 한 줄에 하나씩 JSON으로만 답해: '
    '{"kind": "<' + '|'.join(KINDS) + '>", "text": "<아이가 한 말 그대로의 부분>"}. '
    '기억할 것이 없으면 아무것도 쓰지 마.')
JSON_LINE = re.compile(r'\{[^{}]*\}')


class LLMExtractor:
    """Asks the chat model for facts; keeps only the child's own words, of a known kind."""

    def __init__(self, backend):
        self.backend = backend
        self._warned = False

    def extract(self, text: str, said: dt.datetime, rules) -> List[Candidate]:
        """Return the model's candidates for one utterance ([] on any failure)."""
        messages = [{'role': 'system', 'content': INSTRUCTION},
                    {'role': 'user', 'content': text}]
        try:
            answer = ''.join(self.backend.stream(messages, SAMPLING))
        except LLMError as exc:
            if not self._warned:
                log.warning('memory: the model extraction failed, the rules stand: %s', exc)
                self._warned = True
            return []
        found = []
        spaced = ' '.join(text.split())
        for raw in JSON_LINE.findall(answer):
            try:
                fact = json.loads(raw)
            except ValueError:
                continue
            words = ' '.join(str(fact.get('text', '')).split())
            kind = fact.get('kind')
            if kind not in KINDS or len(words) < 2 or words not in spaced or \
                    rules.is_personal(words):
                continue
            date = resolve_date(words.lower(), said)
            found.append(Candidate(kind, words, date.isoformat() if date else None,
                                   None, bool(rules.change.search(words.lower()))))
        return found
