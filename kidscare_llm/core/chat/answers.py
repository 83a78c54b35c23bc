"""The replies the model never writes: the safe line for a flagged utterance, the persona's lines.

Kept apart from the engine's reply path: both are stored or spoken the same way as a reply
would be, and neither reaches the model.
"""

import logging
from typing import Callable, Optional

from kidscare_llm.core.chat.reply import Reply
from kidscare_llm.core.rag.korean import language_of

log = logging.getLogger(__name__)


class FixedAnswers:
    """Answers of the engine that need no generation (safety lines, too-long, busy ...)."""

    def __init__(self, engine):
        self.engine = engine

    def safe(self, user: str, session_id: str, text: str, verdict,
             on_sentence: Optional[Callable[[str], None]]) -> Reply:
        """Answer a flagged utterance with the category's safe line; alert if the policy says.

        A caregiver may ask for alerts of more categories (engine.alert_also, from the
        console's Rules page). Both turns are stored (the conversation stays whole); the model
        never sees the words.
        """
        engine = self.engine
        log.warning('user %s: input flagged %s, action %s (%s)', user, verdict.category,
                    verdict.action, verdict.reason)
        if verdict.alert or engine.alert_also(verdict.category):
            engine.alerts.raise_alert(user, session_id, text, verdict)
        line = engine.safety.reply_for(verdict, language_of(text))
        engine.store.add(session_id, 'user', text)
        engine.store.add(session_id, 'assistant', line)
        engine.backend.forget(session_id)  # the KV snapshot no longer matches the history
        if on_sentence:
            on_sentence(line)
        return Reply(line, session_id, kind='safety', sentences=[line])

    def line(self, session_id: str, key: str, kind: str,
             on_sentence: Optional[Callable[[str], None]]) -> Reply:
        """Say one of the persona's lines (lines.yaml) as the whole reply."""
        text = self.engine.persona.line(key)
        if on_sentence:
            on_sentence(text)
        return Reply(text, session_id, kind=kind, sentences=[text])
