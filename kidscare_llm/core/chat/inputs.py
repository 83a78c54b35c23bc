"""What comes in from a child or a robot: utterances and user ids, cleaned or refused."""

import re

from kidscare_llm.core.errors import EmptyUtterance, InputError, OversizedUtterance

# C0/C1 control characters other than tab and newline, and DEL: noise from a serial line or a
# bad STT; they would reach the prompt and the database otherwise.
_CONTROL = re.compile('[\x00-\x08\x0b-\x1f\x7f-\x9f]')
MAX_USER_CHARS = 64


def _valid_unicode(text: str) -> str:
    """Replace lone surrogates (undecodable bytes of a terminal or file) with U+FFFD."""
    return text.encode('utf-8', 'surrogatepass').decode('utf-8', 'replace')


def clean_utterance(text: str, max_chars: int) -> str:
    """Return the utterance stripped of control characters; raise EmptyUtterance or Oversized."""
    text = _CONTROL.sub('', _valid_unicode(text or '')).strip()
    if not text:
        raise EmptyUtterance('empty utterance')
    if len(text) > max_chars:
        raise OversizedUtterance(f'utterance of {len(text)} characters is over '
                                 f'chat.max_utterance_chars={max_chars}')
    return text


def clean_user(user: str) -> str:
    """Return a user id fit to name a session: no control characters, at most 64 characters.

    Ids are only ever SQL values and hashed file names, so path characters are harmless and
    kept; an id that is empty once cleaned raises InputError.
    """
    cleaned = _CONTROL.sub('', _valid_unicode(user or '')).strip()[:MAX_USER_CHARS]
    if not cleaned:
        raise InputError(f'user id {user!r} is empty once control characters are removed')
    return cleaned
