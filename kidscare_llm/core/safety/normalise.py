"""Normalisation: the one form of a text that every safety rule and stage looks at.

Children (and children testing a robot) write the same words many ways: full-width letters,
zero-width characters, "죽 고 싶 어", "자.살", "ㅈㅏㅅㅏㄹ", "ㅅㅂ", "k1ll". normalise() maps them
to one form so that an operator writes each lexicon entry once; compact() drops spaces and
punctuation on top (phrases are matched on it). Pure functions, no configuration.
"""

import re
import unicodedata

MAX_CHARS = 2000  # normalise() looks at this many characters (an utterance is far shorter)

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
_REPEAT = re.compile(r'([^\d])\1{2,}')
SPACES = re.compile(r'\s+')
JAMO_RUN = re.compile('[\u3131-\u318e]+')  # jamo left after composition: 초성 slang, ㅋㅋ
# Common 초성 slang, expanded inside runs of jamo (operators add more per category: chosung).
CHOSEONG_SLANG = {'ㅆㅂ': '씨발', 'ㅅㅂ': '시발', 'ㅂㅅ': '병신', 'ㅈㄹ': '지랄', 'ㄲㅈ': '꺼져',
                  'ㅁㅊ': '미친', 'ㄷㅊ': '닥쳐', 'ㅈㄴ': '존나', 'ㅄ': '병신', 'ㅗㅗ': '엿'}
_SLANG = re.compile('|'.join(sorted(CHOSEONG_SLANG, key=len, reverse=True)))


def compose_jamo(run: str) -> str:
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
        joined = len(run) >= 3 or (len(run) == 2 and all(JAMO_RUN.fullmatch(c) for c in run))
        out.extend([''.join(run)] if joined else run)
        run = []
        out.append(w)
    return ' '.join(x for x in out if x)


def _unleet(token: str) -> str:
    """Map digits/symbols that sit between letters (k1ll, b!tch) to the letters they mimic."""
    chars = list(token)
    for i, c in enumerate(chars):
        if c in '013457@$!' and 0 < i < len(chars) - 1:
            chars[i] = c.translate(_LEET)
    return ''.join(chars)


def _normalise_once(text: str) -> str:
    text = text[:MAX_CHARS]
    text = ''.join(c if '\u3131' <= c <= '\u318e' else unicodedata.normalize('NFKC', c)
                   for c in text)
    text = _INVISIBLE.sub('', text).translate(_TO_COMPAT)
    text = ''.join(' ' if unicodedata.category(c)[0] in 'CZ' else c for c in text)
    text = text.casefold()
    text = JAMO_RUN.sub(lambda m: compose_jamo(m.group()), text)
    text = _LEET_TOKEN.sub(lambda m: m.group() if m.group().isalpha() else _unleet(m.group()),
                           text)
    text = _SEPARATED.sub('', text)
    text = _REPEAT.sub(r'\1\1', text)
    text = JAMO_RUN.sub(lambda m: _SLANG.sub(lambda s: CHOSEONG_SLANG[s.group()], m.group()),
                        text)
    text = _join_letters(SPACES.sub(' ', text).strip())
    return text[:MAX_CHARS]


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
