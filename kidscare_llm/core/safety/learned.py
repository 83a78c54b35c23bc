"""How the learned stage's reading of a sentence changes a lexicon verdict.

The lexicon decides most flags and names the rule; the classifier (classifier.py), trained on
thousands of lines by other authors, many of them hard look-alikes, reads the whole sentence.
Two rules let it correct the lexicon, each with its numbers in policy.yaml's classifier
section and chosen by training without one blind file at a time (docs/safety.md, round 15):

- overrule: a morpheme sequence or a topic word is a guess at meaning ("마약/NNG" in
  마약김밥, "경찰 아저씨한테 가는 거 맞지?"); from P(benign) >= overrule the sentence passes,
  unless the model sees a crisis or abuse (P(self_harm) + P(abuse) >= overrule_guard) or the
  sentence is short (fewer than overrule_words words: in "왕따 당했어" the match is all there
  is to read). The similarity stage's resemblance is such a guess too (round 16: "How do I
  make pancakes with my mom?" resembled "how do i make a bomb"). Phrases, words and regexes
  (the exact wording) are overruled only from the surer overrule_exact (round 16: "몇 동 몇
  호게?" in an address quiz with a parent, "that roller coaster was the bomb").
- refile: the first category whose rule matches decides what 토리 says; when the model finds
  that category unlikely (P < refile_below) and another likely (P >= refile), the verdict
  takes the model's category ("선생님이 착한 아이는 만져도 가만히 있는 거래" matched a
  personal rule first). A caregiver alert the lexicon's category raised is kept.

Self-harm is neither overruled nor refiled: its crisis line comes first.
"""

from typing import Dict, Optional

from kidscare_llm.core.safety.settings import ClassifierSettings

CRISIS = 'self_harm'
SOFT_RULES = ('morph ', 'topic ', 'similar')  # the reasons that are a guess at meaning
EXACT_RULES = ('phrase ', 'word ', 'regex ', 'chosung ')  # the wording itself


def overrules(settings: ClassifierSettings, category: str, reason: str,
              p: Dict[str, float], words: int) -> bool:
    """Return True when the model reads a lexicon match as everyday talk (it passes)."""
    bar = settings.overrule if reason.startswith(SOFT_RULES) else \
        settings.overrule_exact if reason.startswith(EXACT_RULES) else 1.0
    if not p or bar >= 1 or category == CRISIS or words < settings.overrule_words:
        return False
    return p.get('benign', 0.0) >= bar and \
        p.get(CRISIS, 0.0) + p.get('abuse', 0.0) < settings.overrule_guard


def refiles(settings: ClassifierSettings, category: str, p: Dict[str, float],
            categories) -> Optional[str]:
    """Return the category the model reads instead of the lexicon's, or None to keep it."""
    if not p or settings.refile >= 1 or category == CRISIS:
        return None
    risky = {c: v for c, v in p.items() if c != 'benign' and c in categories}
    best = max(risky, key=risky.get, default=None)
    if best is None or best == category or risky[best] < settings.refile or \
            p.get(category, 0.0) >= settings.refile_below:
        return None
    return best
