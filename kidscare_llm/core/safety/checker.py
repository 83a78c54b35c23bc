"""Child safety: check the child's words, the model's sentences and retrieved passages.

Four cheap stages, Korean first (config/safety/*.yaml, editable by operators):

1. normalise(): NFKC, zero-width characters, case, leetspeak, separators and spaces inside
   words ("죽 고 싶 어", "자.살"), repeated characters, jamo typed one by one ("ㅈㅏㅅㅏㄹ")
   and common 초성 slang ("ㅅㅂ").
2. Lexicon per category: phrases (matched with spaces removed), whole words (English),
   regexes, Kiwi morpheme sequences ("죽/VV 싶/VX" catches 죽고 싶어, 죽고싶었어 ...) and
   초성 slang; each category has an allow list of everyday phrases. Mentioning a topic is not
   risk: topic words (a category's `topics`) count on input only with a risk marker (the
   child's intent, wish, request, action or disclosure), and a sentence that only asks about
   or reports a topic quiets the mention categories (policy.yaml; never self-harm or abuse).
3. Similarity (child's words only): TF-IDF over character 2-3-grams and Kiwi lemmas, cosine
   against risky exemplars of every category and benign look-alike exemplars; flagged when
   the nearest risky exemplar is close enough and closer than the nearest benign one.
4. Classifier (child's words only; safety_classifier.py): a linear model over hashed
   character n-grams and Kiwi morphemes, trained once on config/safety/examples/*.jsonl and
   cached; it flags what the stages above miss when P(not benign) >= its threshold.

No neural model is needed: the whole check costs a millisecond or two including one Kiwi call
(~0.2 ms), so it runs on every generated sentence (bench/safety.py measures it).
"""

from collections import Counter
from dataclasses import dataclass
import json
import math
from pathlib import Path
import re
import threading
from typing import Dict, List, Optional, Sequence, Tuple
import unicodedata

import numpy as np
import yaml

from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.paths import cache_dir, share_dir
from kidscare_llm.core.safety.classifier import SafetyClassifier

ACTIONS = ('guide', 'redirect', 'refuse', 'refuse_alert')
OUTPUT_MODES = ('always', 'guarded', 'never')
MAX_CHARS = 2000  # normalise() looks at this many characters (an utterance is far shorter)
POLICY_FILE = 'policy.yaml'
# policy.yaml: <kind>_markers, <kind>_categories and <kind>_exempt (patterns that cancel it)
QUIET_RULES = ('lesson', 'fiction', 'resolved', 'supervised')
BENIGN_FILE = 'benign.yaml'
CATEGORY_KEYS = {'category', 'description', 'phrases', 'words', 'regex', 'morphs', 'chosung',
                 'allow', 'output', 'exemplars', 'topics'}
TOPIC_KEYS = {'phrases', 'words', 'regex', 'morphs'}


def default_safety_dir() -> Path:
    """Return the packaged config/safety folder (source tree, pip install -e or colcon)."""
    return share_dir() / 'config' / 'safety'


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check; `reason` names the rule that matched (for the log)."""

    flagged: bool
    category: Optional[str]
    action: Optional[str]
    alert: bool
    reason: str
    stage: str = 'input'  # input | output | passage
    score: float = 0.0  # similarity of the nearest risky exemplar (similarity stage)

    def as_dict(self) -> dict:
        """Return the verdict as plain data (JSON for the log or a caregiver alert)."""
        return {'flagged': self.flagged, 'category': self.category, 'action': self.action,
                'alert': self.alert, 'reason': self.reason, 'stage': self.stage,
                'score': round(self.score, 3)}


def _safe(stage: str) -> Verdict:
    return Verdict(False, None, None, False, '', stage)


# ----------------------------------------------------------------------------- normalise

_COMPAT_CONSONANTS = 'ㄱㄲㄳㄴㄵㄶㄷㄸㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅃㅄㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ'
_INITIALS = 'ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ'
_FINALS = ' ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ'
# Conjoining jamo (what NFKC makes of compatibility jamo) back to compatibility jamo.
_TO_COMPAT = {}
for _c in map(chr, range(0x3131, 0x318F)):
    _n = unicodedata.normalize('NFKC', _c)
    if len(_n) == 1 and _n != _c:
        _TO_COMPAT[ord(_n)] = _c
for _i, _c in enumerate(_FINALS[1:], start=1):  # jongseong U+11A8.. to compatibility jamo
    _TO_COMPAT.setdefault(0x11A7 + _i, _c)
_INVISIBLE = re.compile('[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f'
                        '\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff'
                        '\uffa0]')
_LEET = str.maketrans({'0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a',
                       '$': 's', '!': 'i'})
_LEET_TOKEN = re.compile(r'(?<![\w@$!])[a-z0-9@$!]*[a-z][a-z0-9@$!]*(?![\w@$!])')
_SEPARATED = re.compile(r'(?<=[^\W\d_])[.\-_*~/|·,+^]+(?=[^\W\d_])')
_SPACES = re.compile(r'\s+')
_REPEAT = re.compile(r'([^\d])\1{2,}')
_JAMO_RUN = re.compile('[\u3131-\u318e]+')
# Common 초성 slang, expanded inside runs of jamo (operators add more per category: chosung).
CHOSEONG_SLANG = {'ㅆㅂ': '씨발', 'ㅅㅂ': '시발', 'ㅂㅅ': '병신', 'ㅈㄹ': '지랄', 'ㄲㅈ': '꺼져',
                  'ㅁㅊ': '미친', 'ㄷㅊ': '닥쳐', 'ㅈㄴ': '존나', 'ㅄ': '병신', 'ㅗㅗ': '엿'}
_SLANG = re.compile('|'.join(sorted(CHOSEONG_SLANG, key=len, reverse=True)))


def _compose_jamo(run: str) -> str:
    """Compose jamo typed one by one ("ㅈㅏㅅㅏㄹ") into syllables; leave 초성-only runs."""
    out, i = [], 0
    while i < len(run):
        c = run[i]
        nxt = run[i + 1] if i + 1 < len(run) else ''
        if c in _INITIALS and nxt and '\u314f' <= nxt <= '\u3163':
            code = 0xAC00 + (_INITIALS.index(c) * 21 + ord(nxt) - 0x314F) * 28
            i += 2
            f = run[i] if i < len(run) else ''
            after = run[i + 1] if i + 1 < len(run) else ''
            if f in _FINALS[1:] and not ('\u314f' <= after <= '\u3163'):
                code += _FINALS.index(f)
                i += 1
            out.append(chr(code))
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def _join_letters(text: str) -> str:
    """Join runs of one-letter words: "죽 고 싶 어" -> "죽고싶어", "ㅅ ㅂ" -> "ㅅㅂ".

    Three or more letters are joined; two are joined when both are jamo (초성 typed apart).
    """
    words = text.split(' ')
    out, run = [], []
    for w in words + ['']:
        if len(w) == 1 and w.isalpha():
            run.append(w)
            continue
        joined = len(run) >= 3 or (len(run) == 2 and all(_JAMO_RUN.fullmatch(c) for c in run))
        out.extend([''.join(run)] if joined else run)
        run = []
        out.append(w)
    return ' '.join(x for x in out if x)


def _normalise_once(text: str) -> str:
    text = text[:MAX_CHARS]
    text = ''.join(c if '\u3131' <= c <= '\u318e' else unicodedata.normalize('NFKC', c)
                   for c in text)
    text = _INVISIBLE.sub('', text).translate(_TO_COMPAT)
    text = ''.join(' ' if unicodedata.category(c)[0] in 'CZ' else c for c in text)
    text = text.casefold()
    text = _JAMO_RUN.sub(lambda m: _compose_jamo(m.group()), text)
    text = _LEET_TOKEN.sub(lambda m: m.group() if m.group().isalpha() else _unleet(m.group()),
                           text)
    text = _SEPARATED.sub('', text)
    text = _REPEAT.sub(r'\1\1', text)
    text = _JAMO_RUN.sub(lambda m: _SLANG.sub(lambda s: CHOSEONG_SLANG[s.group()], m.group()),
                         text)
    text = _join_letters(_SPACES.sub(' ', text).strip())
    return text[:MAX_CHARS]


def _unleet(token: str) -> str:
    """Map digits/symbols that sit between letters (k1ll, b!tch) to the letters they mimic."""
    chars = list(token)
    for i, c in enumerate(chars):
        if c in '013457@$!' and 0 < i < len(chars) - 1:
            chars[i] = c.translate(_LEET)
    return ''.join(chars)


def normalise(text: str) -> str:
    """Return the text the checks look at: Korean-first normalisation, idempotent, bounded.

    NFKC (full-width forms), no zero-width or control characters, case-folded, separators and
    spaces inside words removed, characters repeated more than twice cut to two, jamo typed
    one by one composed and common 초성 slang expanded (ㅅㅂ -> 시발). At most MAX_CHARS long.
    """
    if not isinstance(text, str):
        text = str(text)
    for _ in range(6):  # each pass only shortens or simplifies: a fixed point comes quickly
        nxt = _normalise_once(text)
        if nxt == text:
            break
        text = nxt
    return text


def compact(normalised: str) -> str:
    """Return normalised text without spaces and punctuation (what phrases are matched on)."""
    return ''.join(c for c in normalised if c.isalnum())


def language_of(text: str) -> str:
    """Return 'ko' when the text has Hangul, else 'en' (which safe line to say)."""
    return 'ko' if re.search('[\u3131-\u318e\uac00-\ud7a3]', text or '') else 'en'


# ----------------------------------------------------------------------------- lexicon

def _join_syllables(spaced: str) -> str:
    """Join runs of one-character words ("지 랄", "섹 스 하자" -> "지랄", "섹스 하자")."""
    return re.sub(r'(?<![^ ])(\S)((?: \S)+)(?![^ ])',
                  lambda m: m.group(1) + m.group(2).replace(' ', ''), spaced)


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
    tag_re = '(?:' + '|'.join(tags) + ')[A-Z-]*' if tags else '[A-Z-]+'
    return ' (?:' + '|'.join(map(re.escape, forms)) + ')/' + tag_re


def _morph_regex(entry: str, path: Path) -> str:
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


def _word_regex(entry: str) -> str:
    """Compile an English word or phrase to a whole-word regex allowing s/es/ed/ing endings."""
    words = [re.escape(w) + r'(?:s|es|ed|d|ing|er|ers)?' for w in normalise(entry).split()]
    return r'(?<![a-z])' + r'\s*'.join(words) + r'(?![a-z])'


def _alternation(pieces: Sequence[str], path: Path, what: str):
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


def _strings(data: dict, key: str, path: Path) -> List[str]:
    """Return a list of strings at key; a dict of lists per language (ko/en) is flattened."""
    value = data.get(key) or []
    if isinstance(value, dict):
        value = [v for lang in value.values() for v in (lang or [])]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{path}: "{key}" must be a list of strings (or ko:/en: lists of '
                          'strings); fix its entries')
    return [v for v in value if v.strip()]


class _Category:
    """One category's compiled lexicon."""

    def __init__(self, name: str, data: dict, path: Path):
        self.name = name
        self.output = data.get('output', 'guarded')
        if self.output not in OUTPUT_MODES:
            raise ConfigError(f'{path}: output: {self.output!r} is not one of '
                              f'{", ".join(OUTPUT_MODES)}; fix it')
        self.phrases = sorted({compact(normalise(p)) for p in _strings(data, 'phrases', path)}
                              - {''}, key=len, reverse=True)
        # A phrase of one or two syllables ("야동") must sit inside one word: matched across a
        # space it is mostly an accident of two words ("아니야 동생").
        self.phrase_re = _alternation([re.escape(p) for p in self.phrases if len(p) > 2],
                                      path, 'phrases')
        self.short_re = _alternation([re.escape(p) for p in self.phrases if len(p) <= 2],
                                     path, 'phrases')
        self.word_re = _alternation([_word_regex(w) for w in _strings(data, 'words', path)],
                                    path, 'words')
        self.regex = _alternation(_strings(data, 'regex', path), path, 'regex')
        self.morph_re = _alternation([_morph_regex(m, path)
                                      for m in _strings(data, 'morphs', path)], path, 'morphs')
        self.chosung = set(_strings(data, 'chosung', path))
        bad = [c for c in self.chosung if not _JAMO_RUN.fullmatch(c)]
        if bad:
            raise ConfigError(f'{path}: chosung entries must be jamo only (e.g. ㅅㅂ): {bad}')
        allow = sorted({compact(normalise(a)) for a in _strings(data, 'allow', path)} - {''},
                       key=len, reverse=True)
        self.allow_re = _alternation([re.escape(a) for a in allow], path, 'allow')
        self.allow_spaced = _alternation([r'\s*'.join(map(re.escape, a)) for a in allow],
                                         path, 'allow')
        self.exemplars = _strings(data, 'exemplars', path)
        # Topic words ("라이터", "왕따", "casino"): naming one is not risk; check_input flags
        # a topic hit only with the child's intent, wish, request or disclosure (policy.yaml
        # risk_markers / risk_morphs). The output and passage checks count them as before.
        topics = data.get('topics') or {}
        if not isinstance(topics, dict) or set(topics) - TOPIC_KEYS:
            raise ConfigError(f'{path}: "topics" must map {", ".join(sorted(TOPIC_KEYS))} to '
                              'lists of strings; fix it')
        self.topic = _Category(name, {**topics, 'allow': data.get('allow') or [],
                                      'output': self.output}, path) if topics else None

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
                               ('phrase', self.short_re, _join_syllables(spaced)),
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


# ----------------------------------------------------------------------------- similarity

class _Similarity:
    """TF-IDF cosine nearest exemplar over character 2-3-grams and Kiwi lemmas (numpy)."""

    def __init__(self, features, texts: List[str], labels: List[str]):
        self._features = features
        self.labels = np.array(labels)
        self.texts = texts
        docs = [features(t) for t in texts]
        df = Counter(f for d in docs for f in d)
        n = len(docs)
        self.idf = {f: math.log((1 + n) / (1 + c)) + 1.0 for f, c in df.items()}
        self.unknown_idf = math.log(1 + n) + 1.0
        postings: Dict[str, List[Tuple[int, float]]] = {}
        for i, d in enumerate(docs):
            w = {f: (1 + math.log(c)) * self.idf[f] for f, c in d.items()}
            norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
            for f, v in w.items():
                postings.setdefault(f, []).append((i, v / norm))
        self.postings = {f: (np.array([i for i, _ in p], dtype=np.int32),
                             np.array([v for _, v in p], dtype=np.float32))
                         for f, p in postings.items()}
        self.n = n

    def scores(self, spaced: str, morph_tokens: List[str]) -> np.ndarray:
        """Return the cosine of the text with every exemplar."""
        d = self._features(spaced, morph_tokens)
        w = {f: (1 + math.log(c)) * self.idf.get(f, self.unknown_idf) for f, c in d.items()}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        idx, val = [], []
        for f, v in w.items():
            p = self.postings.get(f)
            if p is not None:
                idx.append(p[0])
                val.append(p[1] * (v / norm))
        if not idx:
            return np.zeros(self.n, dtype=np.float32)
        return np.bincount(np.concatenate(idx), np.concatenate(val), minlength=self.n)


# ----------------------------------------------------------------------------- checker

class SafetyChecker:
    """Checks the child's words, the model's sentences and retrieved passages."""

    def __init__(self, policy: dict, categories: Dict[str, _Category], benign: List[str],
                 config_dir: Path, kiwi=None):
        self.config_dir = config_dir
        self.policy = policy
        self.categories = categories
        self.order = policy['priority']
        self.actions = {c: policy['categories'][c]['action'] for c in self.order}
        self.alerts = {c: bool(policy['categories'][c].get(
            'alert', self.actions[c] == 'refuse_alert')) for c in self.order}
        self.replies = policy['replies']
        self.guard = _alternation([r'\s*'.join(map(re.escape, compact(normalise(g))))
                                   for g in policy.get('guidance_markers') or []],
                                  config_dir / POLICY_FILE, 'guidance_markers')
        # Context rules: a sentence that repeats a taught rule (lesson), talks about a film,
        # a game or a story (fiction) or tells of a quarrel already made up (resolved) quiets
        # the listed categories on input.
        # A <kind>_exempt pattern cancels the rule for that sentence: a real threat next to a
        # game name ("진짜로"), being told to keep away from the other children ("옆에 앉지 말래").
        self.quiet = []
        for kind in QUIET_RULES:
            markers = _alternation([r'\s*'.join(map(re.escape, compact(normalise(g))))
                                    for g in policy.get(f'{kind}_markers') or []],
                                   config_dir / POLICY_FILE, f'{kind}_markers')
            exempt = _alternation(policy.get(f'{kind}_exempt') or [], config_dir / POLICY_FILE,
                                  f'{kind}_exempt')
            if markers is not None:
                self.quiet.append((markers, set(policy.get(f'{kind}_categories') or []), exempt))
        # Spoken and dialect forms rewritten to standard Korean before matching ("가고시퍼",
        # "뛰어내리믄", "패 뿔라", "묵어 보자"), so one lexicon entry covers them all.
        rewrite = policy.get('rewrite') or {}
        if not isinstance(rewrite, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in rewrite.items()):
            raise ConfigError(f'{config_dir / POLICY_FILE}: "rewrite" must map regex patterns to '
                              'replacement strings; fix it')
        self.rewrite = [(_alternation([k], config_dir / POLICY_FILE, 'rewrite'), v)
                        for k, v in rewrite.items()]
        self.rewrite_any = _alternation(list(rewrite), config_dir / POLICY_FILE, 'rewrite')
        # Mention vs risk: risk markers are the child's intent, wish, request, action or
        # disclosure ("볼래", "하고 싶어", "알려 줘", "당했어", "i want", "let's"); mention
        # markers ask about or report a topic ("뭐야?", "왜", "아빠가 ... 줬어", "what is").
        # A mention without any risk marker quiets mention_categories; a topic word counts
        # only with a risk marker.
        self.risk = _alternation(policy.get('risk_markers') or [], config_dir / POLICY_FILE,
                                 'risk_markers')
        self.risk_morph = _alternation([_morph_regex(m, config_dir / POLICY_FILE)
                                        for m in policy.get('risk_morphs') or []],
                                       config_dir / POLICY_FILE, 'risk_morphs')
        # A weak risk marker (a bare "나/내", "me") is not the child's intent when the sentence
        # reports what a grown-up did ("아빠가 라이터로 초 켜 줬어 내가 불었어"), and a marker
        # followed by a hearsay ending is someone else's ("형이 술 마셔 봤대").
        self.weak_risk = _alternation(policy.get('weak_risk') or [], config_dir / POLICY_FILE,
                                      'weak_risk')
        self.hearsay = _alternation(policy.get('hearsay_after') or [],
                                    config_dir / POLICY_FILE, 'hearsay_after')
        self.mention = _alternation(policy.get('mention_markers') or [],
                                    config_dir / POLICY_FILE, 'mention_markers')
        self.mention_categories = set(policy.get('mention_categories') or [])
        self.mention_exempt = _alternation(policy.get('mention_exempt') or [],
                                           config_dir / POLICY_FILE, 'mention_exempt')
        # Other children doing it to the child is bullying, not abuse or violence ("형들이 돈
        # 뺏고 때렸어", "older boys shove me"): peer_markers move peer_categories to bullying.
        self.peer = _alternation(policy.get('peer_markers') or [], config_dir / POLICY_FILE,
                                 'peer_markers')
        self.peer_categories = set(policy.get('peer_categories') or [])
        self.peer_category = str(policy.get('peer_category', 'bullying'))
        self.peer_exempt = _alternation(policy.get('peer_exempt') or [],
                                        config_dir / POLICY_FILE, 'peer_exempt')
        self.injection = _alternation(policy.get('injection') or [],
                                      config_dir / POLICY_FILE, 'injection')
        # The learned stage (safety_classifier.py): trained once on config/safety/examples,
        # flags what the lexicon and the exemplars miss when P(not benign) >= threshold.
        clf = policy.get('classifier') or {}
        self.clf_enabled = bool(clf.get('enabled', False))
        self.clf_threshold = float(clf.get('threshold', 0.9))
        self.clf_dims_log2 = int(clf.get('dims_log2', 16))
        self.clf_c = float(clf.get('c', 10.0))
        self.clf_examples = config_dir / str(clf.get('examples', 'examples'))
        self._clf: Optional[SafetyClassifier] = None
        sim = policy.get('similarity') or {}
        self.sim_threshold = float(sim.get('threshold', 0.5))
        self.sim_threshold_en = float(sim.get('threshold_en', self.sim_threshold))
        self.sim_margin = float(sim.get('margin', 0.05))
        self.sim_enabled = bool(sim.get('enabled', True))
        self.sim_min_chars = int(sim.get('min_chars', 0))
        self._kiwi = kiwi
        self._lock = threading.Lock()
        self._kiwi_lock = threading.Lock()
        self._clf_lock = threading.Lock()
        self._turn: Dict[str, int] = {}
        texts, labels = [], []
        for name in self.order:
            for t in categories[name].exemplars:
                texts.append(normalise(t))
                labels.append(name)
        for t in benign:
            texts.append(normalise(t))
            labels.append('benign')
        self._sim = None
        self._sim_data = (texts, labels)

    # -- loading

    @classmethod
    def load(cls, config_dir: Optional[Path] = None, kiwi=None) -> 'SafetyChecker':
        """Load policy.yaml, benign.yaml and one YAML per category (None: the packaged ones).

        Raises ConfigError naming the file and the fix for bad YAML, an unknown action, a
        category without its file, or an invalid pattern.
        """
        config_dir = Path(config_dir) if config_dir else default_safety_dir()
        if not config_dir.is_dir():
            raise ConfigError(f'{config_dir}: safety config folder not found; point safety '
                              'config at a folder with policy.yaml and one YAML per category')
        policy = _read_yaml(config_dir / POLICY_FILE)
        cats = policy.get('categories')
        if not isinstance(cats, dict) or not cats:
            raise ConfigError(f'{config_dir / POLICY_FILE}: "categories" must map each category '
                              'to {action: guide|redirect|refuse|refuse_alert}; add it')
        for name, entry in cats.items():
            action = (entry or {}).get('action') if isinstance(entry, dict) else None
            if action not in ACTIONS:
                raise ConfigError(f'{config_dir / POLICY_FILE}: category {name}: action '
                                  f'{action!r} is unknown; use one of {", ".join(ACTIONS)}')
        policy['priority'] = list(policy.get('priority') or cats)
        if set(policy['priority']) != set(cats):
            raise ConfigError(f'{config_dir / POLICY_FILE}: "priority" must list every category '
                              f'exactly once ({", ".join(cats)}); fix it')
        for kind in QUIET_RULES + ('mention', 'peer'):
            unknown = set(policy.get(f'{kind}_categories') or []) - set(cats)
            if kind == 'peer' and policy.get('peer_markers'):
                unknown |= {str(policy.get('peer_category', 'bullying'))} - set(cats)
            if unknown:
                what = 'peer_categories or peer_category' if kind == 'peer' else \
                    f'{kind}_categories'
                raise ConfigError(f'{config_dir / POLICY_FILE}: {what} {sorted(unknown)} are '
                                  'not categories; fix the list')
        clf = policy.get('classifier') or {}
        if not isinstance(clf, dict):
            raise ConfigError(f'{config_dir / POLICY_FILE}: "classifier" must be a mapping '
                              '(enabled, threshold, examples, dims_log2, c); fix it')
        try:
            threshold, dims, c = (float(clf.get('threshold', 0.9)),
                                  int(clf.get('dims_log2', 16)), float(clf.get('c', 10.0)))
        except (TypeError, ValueError):
            threshold, dims, c = -1.0, 0, 0.0
        if not (0.0 < threshold < 1.0 and 10 <= dims <= 22 and c > 0):
            raise ConfigError(f'{config_dir / POLICY_FILE}: classifier needs 0 < threshold < 1, '
                              '10 <= dims_log2 <= 22 and c > 0; fix the values')
        examples = config_dir / str(clf.get('examples', 'examples'))
        if clf.get('enabled') and not examples.is_dir():
            raise ConfigError(f'{examples}: classifier examples folder not found; add JSONL '
                              'example lines there or set classifier.enabled: false')
        replies = policy.get('replies')
        if not isinstance(replies, dict):
            raise ConfigError(f'{config_dir / POLICY_FILE}: "replies" (safe lines per category '
                              'and language) is missing; add it')
        for name in list(cats) + ['output', 'passage']:
            for lang in ('ko', 'en'):
                lines = (replies.get(name) or {}).get(lang)
                if not (isinstance(lines, list) and lines
                        and all(isinstance(x, str) and x.strip() for x in lines)):
                    raise ConfigError(f'{config_dir / POLICY_FILE}: replies.{name}.{lang} must be '
                                      'a non-empty list of lines; add one')
        categories = {}
        for name in cats:
            path = config_dir / f'{name}.yaml'
            data = _read_yaml(path)
            unknown = set(data) - CATEGORY_KEYS
            if unknown:
                raise ConfigError(f'{path}: unknown keys {sorted(unknown)}; use only '
                                  f'{", ".join(sorted(CATEGORY_KEYS))}')
            if data.get('category', name) != name:
                raise ConfigError(f'{path}: category: {data.get("category")!r} does not match the '
                                  f'file name; write category: {name}')
            categories[name] = _Category(name, data, path)
        benign_path = config_dir / BENIGN_FILE
        benign = _strings(_read_yaml(benign_path), 'exemplars', benign_path) \
            if benign_path.is_file() else []
        return cls(policy, categories, benign, config_dir, kiwi)

    # -- analysis

    def _kiwi_tokens(self, text: str) -> List[Tuple[str, str]]:
        if self._kiwi is None:
            with self._lock:
                if self._kiwi is None:
                    from kiwipiepy import Kiwi
                    self._kiwi = Kiwi()
        with self._kiwi_lock:  # callbacks arrive on several DDS threads; one Kiwi call at a time
            return [(t.form, t.tag) for t in self._kiwi.tokenize(text)]

    def _analyse(self, text: str):
        spaced = self.standardise(normalise(text))
        packed = compact(spaced)
        tokens = self._kiwi_tokens(spaced) if packed else []
        jamo = _JAMO_RUN.findall(spaced)
        return spaced, packed, self._morph_string(tokens), jamo, tokens

    def standardise(self, spaced: str) -> str:
        """Rewrite dialect and spoken forms to standard Korean (policy.yaml rewrite)."""
        if self.rewrite_any is None or not self.rewrite_any.search(spaced):
            return spaced
        for rx, repl in self.rewrite:
            if rx.search(spaced):
                spaced = _SPACES.sub(' ', rx.sub(repl, spaced)).strip()
        return spaced

    @staticmethod
    def _morph_string(tokens) -> str:
        return ''.join(f' {normalise(f).replace(" ", "")}/{t}' for f, t in tokens)

    def _reanalyse(self, spaced: str) -> str:
        return self._morph_string(self._kiwi_tokens(spaced))

    @staticmethod
    def _features(spaced: str, tokens=None) -> Counter:
        packed = compact(spaced)
        feats = Counter(packed[i:i + n] for n in (2, 3) for i in range(len(packed) - n + 1))
        if tokens is not None:
            lemmas = [f'{f}/{t[:2]}' for f, t in tokens
                      if t[:2] in ('NN', 'VV', 'VA', 'VX', 'XR', 'MA', 'SL', 'NP')]
            feats.update('@' + x for x in lemmas)
            feats.update(f'@{a}+{b}' for a, b in zip(lemmas, lemmas[1:]))
        return feats

    def _similarity(self) -> _Similarity:
        if self._sim is None:
            texts, labels = self._sim_data
            tokens = [self._kiwi_tokens(t) for t in texts]
            feats = dict(zip(texts, tokens))
            self._sim = _Similarity(
                lambda s, tok=None: self._features(s, feats.get(s) if tok is None else tok),
                texts, labels)
        return self._sim

    def _spaced_and_morphs(self, text: str) -> Tuple[str, str]:
        spaced, _, morphs, _, _ = self._analyse(text)
        return spaced, morphs

    def classifier(self) -> Optional[SafetyClassifier]:
        """Return the learned stage (trained on first use, then read from the cache)."""
        if not self.clf_enabled:
            return None
        if self._clf is None:
            with self._clf_lock:
                if self._clf is None:
                    from kiwipiepy import __version__ as kiwi_version
                    # the features also depend on the rewrite rules and Kiwi's analyses
                    salt = json.dumps([self.policy.get('rewrite') or {}, kiwi_version],
                                      ensure_ascii=False)
                    self._clf = SafetyClassifier.load_or_train(
                        self.clf_examples, self._spaced_and_morphs, self.clf_dims_log2,
                        self.clf_c, cache_dir(), salt)
        return self._clf

    def warm_up(self) -> 'SafetyChecker':
        """Load Kiwi, the exemplar index and the classifier now: the first check is not slow."""
        self._similarity()
        self.classifier()
        return self

    def _verdict(self, category: str, reason: str, stage: str, score: float = 0.0) -> Verdict:
        return Verdict(True, category, self.actions[category], self.alerts[category], reason,
                       stage, score)

    # -- the three checks

    @staticmethod
    def _found(rx, spaced: str, packed: str) -> bool:
        return rx is not None and (rx.search(spaced) or rx.search(packed)) is not None

    def risk_marker(self, spaced: str, morphs: str, mention: bool = False) -> str:
        """Return the child's intent/wish/request/disclosure marker in the text ('' if none).

        A marker followed by a hearsay ending is someone else's and does not count; a weak one
        (policy.yaml weak_risk: a bare "나", "me") does not count when the sentence reports or
        asks about something (mention).
        """
        weak = ''
        for rx, text in ((self.risk, spaced), (self.risk, compact(spaced)),
                         (self.risk_morph, morphs)):
            for m in (rx.finditer(text) if rx is not None else ()):
                marker = m.group().strip()
                if rx is self.risk_morph and self.hearsay is not None and \
                        self.hearsay.match(text, m.end()):
                    continue
                if self.weak_risk is not None and self.weak_risk.fullmatch(marker):
                    weak = weak or marker
                    continue
                return marker
        return '' if mention else weak

    def check_input(self, text: str) -> Verdict:
        """Check the child's words (before retrieval and generation).

        Mentioning a topic is not risk: a topic word, or a sentence of a mention category that
        only asks about or reports something, is flagged only with a risk marker (the child's
        intent, wish, request, action or disclosure). Self-harm and abuse are never quieted.
        """
        spaced, packed, morphs, jamo, tokens = self._analyse(text)
        if not packed:
            return _safe('input')
        quiet = {c for rx, cats, exempt in self.quiet
                 if rx.search(packed) and not self._found(exempt, spaced, packed) for c in cats}
        mention = self._found(self.mention, spaced, packed) and \
            not self._found(self.mention_exempt, spaced, packed)
        risk = self.risk_marker(spaced, morphs, mention)
        if not risk and mention:
            quiet |= self.mention_categories
        for name in self.order:
            if name in quiet:
                continue
            cat = self.categories[name]
            reason = cat.match(spaced, packed, morphs, jamo, self._reanalyse)
            if not reason and risk and cat.topic is not None:
                reason = cat.topic.match(spaced, packed, morphs, [], self._reanalyse)
                reason = f'topic {reason} + risk "{risk}"' if reason else ''
            if reason:
                peer = self.peer_category
                if name in self.peer_categories and peer in self.categories and \
                        peer not in quiet and self._found(self.peer, spaced, packed) \
                        and not self._found(self.peer_exempt, spaced, packed):
                    return self._verdict(peer, f'{peer}: peers + {name}: {reason}', 'input')
                return self._verdict(name, f'{name}: {reason}', 'input')
        if self.sim_enabled and len(packed) >= self.sim_min_chars:
            sim = self._similarity()
            scores = sim.scores(spaced, tokens)
            benign = sim.labels == 'benign'
            if len(scores) and not benign.all():
                risky_scores = np.where(benign, -1.0, scores)
                best = int(np.argmax(risky_scores))
                best_benign = float(scores[benign].max()) if benign.any() else 0.0
                s = float(risky_scores[best])
                name = str(sim.labels[best])
                allow = self.categories[name].allow_re
                threshold = self.sim_threshold_en if packed.isascii() else self.sim_threshold
                if s >= threshold and s >= best_benign + self.sim_margin and \
                        name not in quiet and not (allow is not None and allow.search(packed)):
                    return self._verdict(name, f'{name}: similar to exemplar '
                                         f'"{sim.texts[best]}" ({s:.2f})', 'input', s)
        clf = self.classifier()
        if clf is not None:
            name, p = clf.risky(spaced, morphs)
            allow = self.categories[name].allow_re if name in self.categories else None
            if p >= self.clf_threshold and name in self.categories and name not in quiet \
                    and not (allow is not None and allow.search(packed)):
                return self._verdict(name, f'{name}: classifier ({p:.2f})', 'input', p)
        return _safe('input')

    def check_output(self, text: str) -> Verdict:
        """Check one sentence (or the whole reply) of the model before it is spoken.

        Categories marked output: always (sexual words, swearing) are flagged anywhere;
        guarded ones only when the sentence does not also steer the child to safety
        ("하지 마", "위험해", "어른한테 말해", "don't"), so 토리's own guidance passes.
        """
        spaced, packed, morphs, jamo, _ = self._analyse(text)
        if not packed:
            return _safe('output')
        guarded = self.guard is not None and self.guard.search(packed) is not None
        for name in self.order:
            cat = self.categories[name]
            if cat.output == 'never' or (cat.output == 'guarded' and guarded):
                continue
            reason = cat.match_any(spaced, packed, morphs, jamo, self._reanalyse)
            if reason:
                return self._verdict(name, f'{name}: {reason}', 'output')
        return _safe('output')

    def check_passage(self, text: str) -> Verdict:
        """Check a retrieved passage: flag instructions aimed at the model (prompt injection).

        Passages are data; one that tells the model to ignore its rules, take a new role or
        reveal its prompt is flagged (category 'injection', action 'drop') so the caller
        drops it. Sexual content and swearing (output: always) are flagged too.
        """
        spaced, packed, morphs, jamo, _ = self._analyse(text)
        if not packed:
            return _safe('passage')
        if self.injection is not None:
            m = (self.injection.search(spaced) or self.injection.search(packed)
                 or self.injection.search(unicodedata.normalize('NFKC', text).casefold()))
            if m:
                return Verdict(True, 'injection', 'drop', False,
                               f'injection: "{m.group().strip()}"', 'passage')
        for name in self.order:
            cat = self.categories[name]
            if cat.output == 'always':
                reason = cat.match_any(spaced, packed, morphs, jamo, self._reanalyse)
                if reason:
                    return Verdict(True, name, 'drop', False, f'{name}: {reason}', 'passage')
        return _safe('passage')

    def reply_for(self, verdict: Verdict, lang: str = 'ko') -> str:
        """Return the safe line to say for a flagged verdict, in the persona's voice.

        Input verdicts get their category's line (lines rotate so a child who repeats does
        not hear the same words every time); output and passage verdicts get the neutral
        replacement line.
        """
        lang = lang if lang in ('ko', 'en') else 'ko'
        key = verdict.category if verdict.stage == 'input' else verdict.stage
        key = key if key in self.replies else 'output'
        lines = self.replies[key][lang]
        with self._lock:
            turn = self._turn.get(f'{key}/{lang}', 0)
            self._turn[f'{key}/{lang}'] = turn + 1
        return lines[turn % len(lines)]

    def guidance_for(self, verdict: Verdict, lang: str = 'ko') -> str:
        """Return a note for the model's prompt for 'guide' verdicts ('' when none is set)."""
        note = (self.policy['categories'].get(verdict.category) or {}).get('guidance') or {}
        return note.get(lang) or note.get('ko') or '' if isinstance(note, dict) else str(note)


def _read_yaml(path: Path) -> dict:
    """Read a YAML mapping; ConfigError naming the file and the fix when it is not one."""
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8-sig'))
    except FileNotFoundError:
        raise ConfigError(f'{path}: file not found; restore it from the packaged '
                          'config/safety or remove its category from policy.yaml') from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f'{path}: cannot read ({exc}); save it as UTF-8 text') from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        raise ConfigError(f'{path}: invalid YAML{where}; fix the syntax (quote entries that '
                          'hold : # [ ] { } or start with * & !)') from None
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a YAML mapping (key: value lines); fix the file')
    return data
