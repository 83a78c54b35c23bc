"""Korean text analysis with Kiwi: sentences for chunking, content morphemes for BM25."""

from typing import Iterable, List

# Content morphemes: nouns, verb and adjective stems, roots, foreign words, numbers, hanja.
CONTENT_TAGS = ('NN', 'NR', 'NP', 'VV', 'VA', 'XR', 'SL', 'SN', 'SH', 'MAG')


class KoreanAnalyzer:
    """Wraps kiwipiepy.Kiwi (loaded once, about a second)."""

    def __init__(self):
        from kiwipiepy import Kiwi

        self._kiwi = Kiwi()

    @property
    def kiwi(self):
        """The Kiwi instance itself (about 500 MB: share it, e.g. with the safety checker)."""
        return self._kiwi

    @staticmethod
    def _content(tokens) -> List[str]:
        return [t.form.lower() for t in tokens if t.tag.startswith(CONTENT_TAGS)]

    def terms(self, text: str) -> List[str]:
        """Return the content morphemes of a text (lower-cased), for BM25."""
        return self._content(self._kiwi.tokenize(text))

    def terms_many(self, texts: Iterable[str]) -> List[List[str]]:
        """Return the content morphemes of many texts (Kiwi's batch path)."""
        texts = list(texts)
        if not texts:
            return []
        return [self._content(tokens) for tokens in self._kiwi.tokenize(texts)]

    def sentences(self, text: str) -> List[str]:
        """Split a text into sentences, Korean-aware: works without punctuation too."""
        return [s.text.strip() for s in self._kiwi.split_into_sents(text) if s.text.strip()]
