"""Lexicon rules: one category's YAML (config/safety/<category>.yaml) compiled to regexes.

A category lists phrases (matched with spaces removed), whole words (English, with s/ed/ing
endings), regexes, Kiwi morpheme sequences ("죽/VV 싶/VX" catches 죽고 싶어, 죽고싶었어 ...)
and 초성 slang, plus an allow list of everyday phrases that contain a rule's words (마약김밥).
Topic words (`topics`) are compiled apart: naming a topic is not risk, so the checker counts
them on the child's words only with a risk marker. The helpers that build the regexes are
shared with policy.yaml's patterns.
"""

from pathlib import Path
import re
from re import Pattern
from typing import List, Optional, Sequence, Tuple

from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.safety.normalise import compact, JAMO_RUN, normalise

OUTPUT_MODES = ('always', 'guarded', 'never')
CATEGORY_KEYS = {'category', 'description', 'phrases', 'words', 'regex', 'morphs', 'chosung',
                 'allow', 'output', 'exemplars', 'topics'}
TOPIC_KEYS = {'phrases', 'words', 'regex', 'morphs'}


def join_syllables(spaced: str) -> str:
    """Join runs of one-character words ("지 랄", "섹 스 하자" -> "지랄", "섹스 하자")."""
    return re.sub(r'(?<![^ ])(\S)((?: \S)+)(?![^ ])',
                  lambda m: m.group(1) + m.group(2).replace(' ', ''), spaced)


def morph_string(tokens: Sequence[Tuple[str, str]]) -> str:
    """Return Kiwi's (form, tag) tokens as the string morph regexes run on (" 죽/VV 고/EC")."""
    return ''.join(f' {normalise(f).replace(" ", "")}/{t}' for f, t in tokens)


def _morph_piece(item: str, entry: str, path: Path) -> str:
    """Compile one item: form, form/TAG, 보|싶/VX (shared tag), 없/VA|죽/VV (own tags)."""
    if '/' in item and '|' in item and not re.fullmatch(r'[^/]+/[A-Z]+(?:\|[A-Z]+)*', item):
        return ' (?:' + '|'.join(_morph_piece(a, entry, path)[1:] for a in item.split('|')) + ')'
    form, _, tag = item.rpartition('/') if '/' in item else (item, '', '')
    forms = [normalise(f) for f in form.split('|') if f]
    tags = tag.split('|') if tag else []
    if not forms or not all(re.fullmatch('[A-Z]+', t) for t in tags):
        raise ConfigError(f'{path}: morpheme "{item}" in "{entry}" is not form or form/TAG '
                          '(e.g. 죽/VV, 보|싶/VX, 없/VA|죽/VV); fix the morphs list')
    if 'EF' in tags and 'EC' not in tags:  # run-on speech: Kiwi reads 마실래 거품… as EC
        tags.append('EC')
    tag_re = '(?:' + '|'.join(tags) + ')[A-Z-]*' if tags else '[A-Z-]+'
    return ' (?:' + '|'.join(map(re.escape, forms)) + ')/' + tag_re


def morph_regex(entry: str, path: Path) -> str:
    """Compile "죽/VV 싶/VX" to a regex on the morpheme string (" 죽/VV 고/EC 싶/VX ...").

    Items are form or form/TAG (TAG a prefix: VV, NN ...); alternatives with |: 보|싶/VX,
    NN|NP tags, 없/VA|죽/VV. Neighbours may have up to 2 morphemes between them, after '*'
    up to 8.
    """
    parts, gap = [], r'(?: [^ ]+){0,2}'
    for item in entry.split():
        if item == '*':
            gap = r'(?: [^ ]+){0,8}'
            continue
        parts.append((gap if parts else '') + _morph_piece(item, entry, path))
        gap = r'(?: [^ ]+){0,2}'
    if not parts:
        raise ConfigError(f'{path}: empty morphs entry; remove it')
    return ''.join(parts) + '(?= |$)'


def word_regex(entry: str) -> str:
    """Compile an English word or phrase to a whole-word regex allowing s/es/ed/ing endings."""
    words = [re.escape(w) + r'(?:s|es|ed|d|ing|er|ers)?' for w in normalise(entry).split()]
    return r'(?<![a-z])' + r'\s*'.join(words) + r'(?![a-z])'


def spaced_phrase_regex(phrase: str) -> str:
    """Compile a phrase to a regex that matches it with or without spaces between letters."""
    return r'\s*'.join(map(re.escape, compact(normalise(phrase))))


def alternation(pieces: Sequence[str], path: Path, what: str) -> Optional[Pattern]:
    """Compile regex pieces into one pattern matching any of them (None when there are none).

    An invalid piece raises ConfigError naming the file, the setting and the entry.
    """
    if not pieces:
        return None
    try:
        return re.compile('|'.join(f'(?:{p})' for p in pieces))
    except re.error as exc:
        for p in pieces:
            try:
                re.compile(p)
            except re.error:
                raise ConfigError(f'{path}: {what} entry {p!r} is not a valid regular '
                                  f'expression ({exc}); fix or quote it') from None
        raise ConfigError(f'{path}: {what}: {exc}') from None


def strings(data: dict, key: str, path: Path) -> List[str]:
    """Return a list of strings at key; a dict of lists per language (ko/en) is flattened."""
    value = data.get(key) or []
    if isinstance(value, dict):
        value = [v for lang in value.values() for v in (lang or [])]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{path}: "{key}" must be a list of strings (or ko:/en: lists of '
                          'strings); fix its entries')
    return [v for v in value if v.strip()]


class CategoryRules:
    """One category's compiled lexicon (and its topic words, compiled the same way)."""

    def __init__(self, name: str, data: dict, path: Path):
        self.name = name
        self.output = data.get('output', 'guarded')
        if self.output not in OUTPUT_MODES:
            raise ConfigError(f'{path}: output: {self.output!r} is not one of '
                              f'{", ".join(OUTPUT_MODES)}; fix it')
        self.phrases = sorted({compact(normalise(p)) for p in strings(data, 'phrases', path)}
                              - {''}, key=len, reverse=True)
        # A phrase of one or two syllables ("야동") must sit inside one word: matched across a
        # space it is mostly an accident of two words ("아니야 동생").
        self.phrase_re = alternation([re.escape(p) for p in self.phrases if len(p) > 2],
                                     path, 'phrases')
        self.short_re = alternation([re.escape(p) for p in self.phrases if len(p) <= 2],
                                    path, 'phrases')
        self.word_re = alternation([word_regex(w) for w in strings(data, 'words', path)],
                                   path, 'words')
        self.regex = alternation(strings(data, 'regex', path), path, 'regex')
        self.morph_re = alternation([morph_regex(m, path)
                                     for m in strings(data, 'morphs', path)], path, 'morphs')
        self.chosung = set(strings(data, 'chosung', path))
        bad = [c for c in self.chosung if not JAMO_RUN.fullmatch(c)]
        if bad:
            raise ConfigError(f'{path}: chosung entries must be jamo only (e.g. ㅅㅂ): {bad}')
        allow = sorted({compact(normalise(a)) for a in strings(data, 'allow', path)} - {''},
                       key=len, reverse=True)
        self.allow_re = alternation([re.escape(a) for a in allow], path, 'allow')
        self.allow_spaced = alternation([r'\s*'.join(map(re.escape, a)) for a in allow],
                                        path, 'allow')
        self.exemplars = strings(data, 'exemplars', path)
        # Topic words ("라이터", "왕따", "casino"): naming one is not risk; check_input flags
        # a topic hit only with the child's intent, wish, request or disclosure (policy.yaml
        # risk_markers / risk_morphs). The output and passage checks count them as before.
        topics = data.get('topics') or {}
        if not isinstance(topics, dict) or set(topics) - TOPIC_KEYS:
            raise ConfigError(f'{path}: "topics" must map {", ".join(sorted(TOPIC_KEYS))} to '
                              'lists of strings; fix it')
        self.topic = CategoryRules(name, {**topics, 'allow': data.get('allow') or [],
                                          'output': self.output}, path) if topics else None

    @classmethod
    def parse(cls, name: str, data: dict, path: Path) -> 'CategoryRules':
        """Compile a category file's mapping; ConfigError for unknown keys or a wrong name."""
        unknown = set(data) - CATEGORY_KEYS
        if unknown:
            raise ConfigError(f'{path}: unknown keys {sorted(unknown)}; use only '
                              f'{", ".join(sorted(CATEGORY_KEYS))}')
        if data.get('category', name) != name:
            raise ConfigError(f'{path}: category: {data.get("category")!r} does not match the '
                              f'file name; write category: {name}')
        return cls(name, data, path)

    def match_any(self, spaced: str, packed: str, morphs: str, jamo: List[str],
                  reanalyse) -> str:
        """Return the rule that matches, topic words included ('' when none does)."""
        reason = self.match(spaced, packed, morphs, jamo, reanalyse)
        if not reason and self.topic is not None:
            reason = self.topic.match(spaced, packed, morphs, [], reanalyse)
            reason = f'topic {reason}' if reason else ''
        return reason

    def match(self, spaced: str, packed: str, morphs: str, jamo: List[str], reanalyse) -> str:
        """Return the rule that matches (for the log), '' when none does.

        Allowed phrases are cut out first; when one was there, the rest is analysed again by
        Kiwi (reanalyse) so that morphemes inside it (마약김밥) do not match either.
        """
        if self.allow_re is not None and self.allow_re.search(packed):
            packed = self.allow_re.sub('|', packed)
            spaced = self.allow_spaced.sub(' | ', spaced)
            morphs = reanalyse(spaced)
        for kind, rx, text in (('phrase', self.phrase_re, packed),
                               ('phrase', self.short_re, join_syllables(spaced)),
                               ('word', self.word_re, spaced),
                               ('regex', self.regex, spaced),
                               ('morph', self.morph_re, morphs)):
            if rx is not None:
                m = rx.search(text)
                if m:
                    return f'{kind} "{m.group().strip()}"'
        for run in jamo:
            for c in self.chosung:
                if c in run:
                    return f'chosung "{c}"'
        return ''
