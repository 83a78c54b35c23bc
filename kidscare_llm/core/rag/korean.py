"""Korean text analysis with Kiwi (one shared, locked instance) and language detection.

Retrieval, chunking and the safety checker all analyse text with the same Kiwi (about 500 MB):
`KoreanAnalyzer` wraps it and serialises every call with one lock, because callbacks arrive on
several transport threads and Kiwi is not documented as thread-safe.
"""

import re
import threading
from typing import Iterable, List

# Content morphemes: nouns, verb and adjective stems, roots, foreign words, numbers, hanja.
CONTENT_TAGS = ('NN', 'NR', 'NP', 'VV', 'VA', 'XR', 'SL', 'SN', 'SH', 'MAG')
# Hangul syllables, compatibility jamo and conjoining jamo.
HANGUL = re.compile('[\u1100-\u11ff\u3131-\u318e\uac00-\ud7a3]')


def has_hangul(text: str) -> bool:
    """Return True when the text holds any Hangul (the Korean voice and lines apply)."""
    return bool(HANGUL.search(text or ''))


def language_of(text: str) -> str:
    """Return 'ko' when the text has Hangul, else 'en': which language to answer a line in."""
    return 'ko' if has_hangul(text) else 'en'


class KoreanAnalyzer:
    """Wraps kiwipiepy.Kiwi (loaded once, about a second); every call holds one lock."""

    def __init__(self):
        from kiwipiepy import Kiwi

        self._kiwi = Kiwi()
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        """Return the kiwipiepy release (the safety classifier's cache key includes it)."""
        from kiwipiepy import __version__
        return __version__

    def tokenize(self, text):
        """Return Kiwi's tokens of a text (or a list of token lists for a list of texts)."""
        with self._lock:
            result = self._kiwi.tokenize(text)
            return result if isinstance(text, str) else list(result)

    @staticmethod
    def _content(tokens) -> List[str]:
        return [t.form.lower() for t in tokens if t.tag.startswith(CONTENT_TAGS)]

    def terms(self, text: str) -> List[str]:
        """Return the content morphemes of a text (lower-cased), for BM25."""
        return self._content(self.tokenize(text))

    def terms_many(self, texts: Iterable[str]) -> List[List[str]]:
        """Return the content morphemes of many texts (Kiwi's batch path)."""
        texts = list(texts)
        if not texts:
            return []
        return [self._content(tokens) for tokens in self.tokenize(texts)]

    def sentences(self, text: str) -> List[str]:
        """Split a text into sentences, Korean-aware: works without punctuation too."""
        with self._lock:
            return [s.text.strip() for s in self._kiwi.split_into_sents(text) if s.text.strip()]
