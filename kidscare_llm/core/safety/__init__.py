"""Child safety: the checker of the child's words, the model's sentences and passages.

normalise.py (one form of a text), lexicon.py (a category's rules), policy.py (policy.yaml,
parsed once) and settings.py (its stages' numbers), similarity.py (TF-IDF against exemplars),
classifier.py (the learned stage), checker.py (SafetyChecker, which orders the stages) and
verdict.py (Verdict, what a check says).
SafetyChecker and Verdict are imported on first use: importing one module of the package does
not load the others (numpy, YAML, the rules). The name normalise is the function, not the
module (imported here at once: it is cheap, and so it is never shadowed by the module).
"""

from kidscare_llm.core.safety.normalise import normalise

__all__ = ['normalise', 'SafetyChecker', 'Verdict']


def __getattr__(name: str):
    """Import SafetyChecker and Verdict on first use (PEP 562)."""
    if name in ('SafetyChecker', 'Verdict'):
        from kidscare_llm.core.safety import checker
        return getattr(checker, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
