"""Typed errors: each says what went wrong and what to fix, so callers can log it once."""


class KidscareError(Exception):
    """Base class for every error kidscare_llm raises on purpose."""


class ConfigError(KidscareError):
    """A parameter or parameter file is wrong."""


class PersonaError(KidscareError):
    """A persona file is missing, unreadable or empty."""


class ModelError(KidscareError):
    """The chat model cannot be found or loaded."""


class LLMError(KidscareError):
    """Generation failed (model crashed, server unreachable, bad answer from a server)."""


class InputError(KidscareError):
    """An utterance cannot be answered as it is."""


class EmptyUtterance(InputError):
    """The utterance is empty or only white space: nothing to answer."""


class OversizedUtterance(InputError):
    """The utterance is longer than chat.max_utterance_chars."""
