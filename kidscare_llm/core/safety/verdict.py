"""What a safety check says: flagged or not, the category, the action and the rule's reason.

Its own module so that the engine, the console and the alert log can read verdicts without
loading the checker's stages.
"""

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check; `reason` names the rule that matched (for the log)."""

    flagged: bool
    category: Optional[str]
    action: Optional[str]
    alert: bool
    reason: str
    stage: str = 'input'  # input | output | passage | judge (the optional judge.py)
    score: float = 0.0  # similarity of the nearest risky exemplar, or the classifier's P

    def as_dict(self) -> dict:
        """Return the verdict as plain data (JSON for the log or a caregiver alert)."""
        return {'flagged': self.flagged, 'category': self.category, 'action': self.action,
                'alert': self.alert, 'reason': self.reason, 'stage': self.stage,
                'score': round(self.score, 3)}


def safe(stage: str) -> Verdict:
    """Return the verdict of a check that found nothing."""
    return Verdict(False, None, None, False, '', stage)
