"""Rule-based extraction: which clauses of an utterance are worth remembering, and as what.

Works with no capable model: Kiwi cuts the utterance into sentences and clauses, and the
lexicon in config/memory/rules.yaml (children's spellings and dialect included) decides each
clause's kind, or that it is a question, a request, chit-chat or talk about the robot. Clauses
of one kind stay together ("수영 안 다녀, 태권도 다녀" is one statement); dates are resolved
at the moment said; "콩이 아니고 콩순이야" is recognised as a correction of '콩'.
"""

from dataclasses import dataclass
import datetime as dt
from pathlib import Path
import re
from typing import Dict, List, Optional, Pattern, Sequence, Tuple

import yaml

from kidscare_llm.core import paths
from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.memory.dates import resolve_date
from kidscare_llm.core.rag.korean import CONTENT_TAGS, has_hangul

# Connective endings after which a new clause may start (-고, -는데, -지만, -서, -니까).
CLAUSE_ENDINGS = ('고', '구', '는데', '은데', 'ㄴ데', '던데', '지만', '어서', '아서', '서', '니까',
                  '으니까', '면서')
# A clause ending in these corrects what follows: no cut ('결혼식 일요일 아이고 토요일이다').
CORRECTING = re.compile(r'(아니고|아니구|아이고|아이라|아니라|말고)$')
MIN_CLAUSE_CONTENT = 3  # content morphemes a clause needs before a connective to stand alone
SPACES = re.compile(r'\s+')


@dataclass
class Candidate:
    """A clause worth remembering: its words, kind, date, and what it corrects or changes."""

    kind: str
    text: str
    event_date: Optional[str] = None
    corrects: Optional[Tuple[str, str]] = None  # (old words, new words)
    changes: bool = False  # says it replaces an older statement ('이제', '그만뒀어')
    corrects_last: bool = False  # '아니 7월 19일!': replaces the statement just before


def rules_file() -> Path:
    """Return the packaged config/memory/rules.yaml."""
    return paths.share_dir() / 'config' / 'memory' / 'rules.yaml'


def _compile(patterns: Sequence[str], where: str) -> Pattern:
    try:
        return re.compile('|'.join(f'(?:{p})' for p in patterns))
    except re.error as exc:
        raise ConfigError(f'memory rules: bad pattern in {where}: {exc}') from None


class RuleExtractor:
    """Kiwi clauses + the rules lexicon: utterance in, memory candidates out."""

    def __init__(self, analyzer, rules: Optional[Path] = None):
        path = Path(rules) if rules else rules_file()
        try:
            config = yaml.safe_load(path.read_text(encoding='utf-8'))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f'memory rules {path}: {exc}') from None
        self.analyzer = analyzer
        self.kinds: Dict[str, Pattern] = {
            kind: _compile(patterns, f'kinds.{kind}')
            for kind, patterns in config['kinds'].items()}
        skip = config['skip']
        self.skips = {name: _compile(skip[name], f'skip.{name}')
                      for name in ('question', 'request', 'robot', 'chitchat')}
        self.chitchat_vetoes = set(skip['chitchat_vetoes'])
        self.dated_plan = _compile([config['dated_plan']], 'dated_plan')
        self.vocative = _compile([config['vocative']], 'vocative')
        self.correction = _compile([config['correction']], 'correction')
        self.change = _compile([config['change']], 'change')
        self.additive = _compile([config['additive']], 'additive')
        self.corrects_last = _compile([config['corrects_last']], 'corrects_last')
        self.clause_break = _compile([config['clause_break']], 'clause_break')
        self.personal = _compile(config['personal'], 'personal')

    @staticmethod
    def _norm(text: str) -> str:
        return SPACES.sub(' ', text.lower()).strip()

    def is_personal(self, text: str) -> bool:
        """Return True when the text holds personal information (never stored)."""
        return bool(self.personal.search(self._norm(text)))

    def adds(self, text: str) -> bool:
        """Return True when a statement adds to others ('키위도 좋아', 'another puppy')."""
        return bool(self.additive.search(self._norm(text))) or any(
            t.form == '도' and t.tag == 'JX' for t in self.analyzer.tokenize(text))

    def kind_of(self, text: str) -> Optional[str]:
        """Return the clause's kind, or None when it is not worth keeping."""
        low = self._norm(text)
        if not low:
            return None
        for name in ('question', 'request', 'robot'):
            if self.skips[name].search(low):
                return None
        kind = next((k for k, p in self.kinds.items() if p.search(low)), None)
        if kind in self.chitchat_vetoes and self.skips['chitchat'].search(low):
            return None
        return kind

    def topic_kinds(self, question: str) -> List[str]:
        """Return every kind a question's words point at (recall favours those items)."""
        low = self._norm(question)
        return [k for k, p in self.kinds.items()
                if k not in ('other', 'plan') and p.search(low)]

    def extract(self, text: str, said: dt.datetime) -> List[Candidate]:
        """Return the candidates of one utterance, said at `said`."""
        clauses = [c for sentence in self._sentences(text) for c in self._clauses(sentence)]
        found = [self._candidate(kind, words, said) for kind, words in self._segments(clauses)]
        return [c for c in found if c is not None]

    def _sentences(self, text: str) -> List[str]:
        out = []
        for line in text.splitlines():
            if line.strip():
                out.extend(self.analyzer.sentences(line))
        return [s for s in (self.vocative.sub('', s, count=1).strip() for s in out) if s]

    def _clauses(self, sentence: str) -> List[str]:
        """Cut a sentence after connective endings and commas (never inside a correction)."""
        tokens = self.analyzer.tokenize(sentence)
        korean = has_hangul(sentence)  # English commas join a statement ('mom said no, so I')
        cuts, content = [], 0
        for i, tok in enumerate(tokens[:-1]):
            after_negation = i > 0 and (tokens[i - 1].tag == 'VCN' or tokens[i - 1].form == '말'
                                        or CORRECTING.search(sentence[:tok.start + tok.len]))
            content += tok.tag.startswith(CONTENT_TAGS)
            auxiliary = tokens[i + 1].tag == 'VX'  # '갖고 싶어', '하고 있어': one predicate
            if tok.tag == 'EC' and tok.form in CLAUSE_ENDINGS and not after_negation \
                    and not auxiliary:
                if content >= MIN_CLAUSE_CONTENT:  # '학교 마치고' is no statement of its own
                    cuts.append(tok.start + tok.len)
                    content = 0
            elif tok.tag == 'SP' and korean and content and not _after_negation(tokens, i):
                cuts.append(tok.start + tok.len)
                content = 0
            elif tok.tag == 'EF' and tokens[i + 1].tag not in ('SF', 'SP', 'SE', 'SW'):
                cuts.append(tok.start + tok.len)  # a run-on: '...좋아해 우리 개는...'
                content = 0
        pieces, start = [], 0
        for cut in cuts:
            pieces.append(sentence[start:cut])
            start = cut
        pieces.append(sentence[start:])
        pieces = [part for p in pieces for part in self.clause_break.split(p)]
        return [p.strip(' ,') for p in pieces if p.strip(' ,')]

    def _segments(self, clauses: Sequence[str]) -> List[Tuple[str, str]]:
        """Group clauses into statements: one per kind, fragments joining the one before.

        A clause of no kind, of the weak kind 'other', or without a predicate ('분홍색 토끼
        필통', '이름은 두부') belongs to the statement before it; a clause of a new kind starts
        a new one; questions, requests and chit-chat stand apart and are dropped.
        """
        segments: List[List] = []  # [kind or None or 'skip', text]
        for clause in clauses:
            kind = self.kind_of(clause)
            if kind is None and self._skipped(clause):
                segments.append(['skip', clause])
                continue
            last = segments[-1] if segments and segments[-1][0] != 'skip' else None
            weak = kind in (None, 'other') or not self._predicate(clause)
            if last is not None and (weak or kind == last[0] or last[0] in (None, 'other')):
                if last[0] in (None, 'other') and kind is not None:
                    last[0] = kind
                last[1] = f'{last[1]} {clause}'
            else:
                segments.append([kind, clause])
        return [(k, t) for k, t in segments if k not in (None, 'skip')] + \
            [('', t) for k, t in segments if k is None]

    def _predicate(self, clause: str) -> bool:
        """Return True when a clause says something (a verb, adjective or copula; English)."""
        if not has_hangul(clause):
            return len(clause.split()) >= 3
        return any(t.tag in ('VV', 'VA', 'VX', 'VCP', 'VCN', 'EF', 'XSV', 'XSA')
                   for t in self.analyzer.tokenize(clause))

    def _skipped(self, clause: str) -> bool:
        low = self._norm(clause)
        return any(self.skips[n].search(low) for n in ('question', 'request', 'robot')) or \
            bool(self.skips['chitchat'].search(low))

    def _candidate(self, kind: str, words: str, said: dt.datetime) -> Optional[Candidate]:
        low = self._norm(words)
        date = resolve_date(low, said)
        correction = self.correction.search(words)
        corrects = None
        if correction and correction['old'] != correction['new']:
            corrects = (correction['old'], correction['new'])
        changes = bool(self.change.search(low)) and not self.adds(words)
        last = bool(self.corrects_last.match(low)) and not corrects
        if not kind and (corrects or changes or last):
            kind = 'other'  # takes the kind of what it corrects or changes
        elif not kind:  # no kind: only a plan for a day after today is kept
            if date is None or date <= said.date() or not self.dated_plan.search(low) or \
                    self._skipped(words):
                return None
            kind = 'event'
        if kind == 'plan':
            kind = 'event'
        return Candidate(kind, words.strip(), date.isoformat() if date else None, corrects,
                         changes, last)


def _after_negation(tokens, i: int) -> bool:
    """Return True for a comma right after '아니다' / '아니': a correction follows."""
    return i > 0 and tokens[i - 1].tag in ('VCN', 'EC') and tokens[i - 1].form in ('다', '아니')
