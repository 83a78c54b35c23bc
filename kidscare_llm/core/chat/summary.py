"""memory.summarize: fold the turns that leave the context into a short summary by the model.

The summary is kept with the session and placed after the persona, so the robot still knows
what was said long ago when the prompt no longer holds it.
"""

import logging
from typing import Sequence

from kidscare_llm.core.chat.persona import Persona
from kidscare_llm.core.chat.sessions import SessionStore, StoredMessage
from kidscare_llm.core.errors import LLMError
from kidscare_llm.core.llm.base import Backend, Sampling

log = logging.getLogger(__name__)
SUMMARY_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=96)


def summarize(backend: Backend, store: SessionStore, persona: Persona, session_id: str,
              dropped: Sequence[StoredMessage]) -> None:
    """Fold the dropped turns (and the summary so far) into the session's new summary."""
    lines = [f'{"아이" if m.role == "user" else "로봇"}: {m.content.strip()}' for m in dropped]
    previous = store.summary(session_id)
    conversation = '\n'.join(([previous] if previous else []) + lines)
    prompt = [{'role': 'system', 'content': persona.line('summary_instruction')},
              {'role': 'user', 'content': conversation}]
    try:
        text = ''.join(backend.stream(prompt, SUMMARY_SAMPLING)).strip()
    except LLMError as exc:
        log.error('session %s: summary failed, dropped turns are forgotten: %s',
                  session_id, exc)
        return
    if text:
        store.set_summary(session_id, text)
        log.info('session %s: %d dropped messages summarised in %d tokens', session_id,
                 len(dropped), backend.count_tokens(text))
