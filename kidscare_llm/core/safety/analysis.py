"""How the safety stages read a text: normalised, standardised, cut into Kiwi morphemes.

One analysis per text is shared by every stage (and the Kiwi instance with retrieval), so a
check costs one Kiwi call whatever the number of categories.
"""

import threading
from typing import List, NamedTuple, Optional, Tuple

from kidscare_llm.core.rag.korean import KoreanAnalyzer
from kidscare_llm.core.safety.lexicon import morph_string
from kidscare_llm.core.safety.normalise import compact, JAMO_RUN, normalise
from kidscare_llm.core.safety.policy import SafetyPolicy


class Analysed(NamedTuple):
    """A text as the stages read it."""

    spaced: str  # normalised and standardised (policy.yaml rewrite)
    packed: str  # the same without spaces and punctuation
    morphs: str  # Kiwi's morphemes as one string (" 죽/VV 고/EC 싶/VX")
    jamo: List[str]  # runs of bare jamo (초성 slang)
    tokens: List[Tuple[str, str]]  # Kiwi's (form, tag) pairs


class TextAnalysis:
    """Normalises, standardises and analyses texts with Kiwi, shared with retrieval."""

    def __init__(self, policy: SafetyPolicy, analyzer: Optional[KoreanAnalyzer] = None):
        self.policy = policy
        self._analyzer = analyzer  # None: created on first use
        self._lock = threading.Lock()

    @property
    def analyzer(self) -> KoreanAnalyzer:
        """Return the Kiwi wrapper (a checker used alone, as in tests, creates its own)."""
        if self._analyzer is None:
            with self._lock:
                if self._analyzer is None:
                    self._analyzer = KoreanAnalyzer()
        return self._analyzer

    def tokens(self, text: str) -> List[Tuple[str, str]]:
        """Return Kiwi's (form, tag) pairs of a text."""
        return [(t.form, t.tag) for t in self.analyzer.tokenize(text)]

    def __call__(self, text: str) -> Analysed:
        """Return the text as the stages read it (one Kiwi call)."""
        spaced = self.policy.standardise(normalise(text))
        packed = compact(spaced)
        tokens = self.tokens(spaced) if packed else []
        return Analysed(spaced, packed, morph_string(tokens), JAMO_RUN.findall(spaced), tokens)

    def morphs(self, spaced: str) -> str:
        """Return the morpheme string of an already normalised text (after allow cuts)."""
        return morph_string(self.tokens(spaced))

    def spaced_and_morphs(self, text: str) -> Tuple[str, str]:
        """Return what the classifier reads of a text."""
        a = self(text)
        return a.spaced, a.morphs
