"""Rules a caregiver sets: quiet hours, a daily talk limit, memory on or off; all or one child.

The chat node owns the rule book (caregiver/rules.json under the data dir, changed only by
caregiver commands); the node's parameters rules.quiet_hours and rules.daily_limit_min are
the defaults under it. A child's own rule overrides the all-children rule field by field.
"""

from dataclasses import asdict, dataclass
import datetime as dt
import json
from pathlib import Path
import re
import threading
from typing import Dict, Optional, Tuple

from kidscare_llm.core.errors import KidscareError
from kidscare_llm.core.paths import replace_file

ALL = '*'  # the key of the rule for every child
SPAN = re.compile(r'^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$')
# What the robot says, in the persona's voice, when a rule stops a conversation (a persona's
# lines.yaml may hold its own `quiet_hours` / `daily_limit` lines).
LINES = {
    'ko': {'quiet_hours': '이제 잘 시간이야. 내일 또 이야기하자!',
           'daily_limit': '오늘은 이야기를 많이 했네! 이제 쉬고 내일 또 이야기하자.'},
    'en': {'quiet_hours': "It's time to rest now. Let's talk again tomorrow!",
           'daily_limit': "We've talked a lot today! Let's rest and talk again tomorrow."},
}


class RuleError(KidscareError):
    """A rule a caregiver asked for is not valid (says which field and why)."""


def parse_span(text: str) -> Optional[Tuple[int, int]]:
    """Return quiet hours 'HH:MM-HH:MM' as (start, end) minutes after midnight; '' is None."""
    if not text or not text.strip():
        return None
    match = SPAN.match(text)
    if not match:
        raise RuleError(f'quiet hours {text!r}: expected HH:MM-HH:MM, e.g. 21:00-07:00')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise RuleError(f'quiet hours {text!r}: start and end are the same time')
    return start, end


def in_span(span: Optional[Tuple[int, int]], minute: int) -> bool:
    """Return True when a minute of the day falls in the span (which may cross midnight)."""
    if span is None:
        return False
    start, end = span
    return start <= minute < end if start < end else (minute >= start or minute < end)


@dataclass(frozen=True)
class Rule:
    """One rule: quiet hours, daily limit in minutes, child memory on; None: inherit.

    quiet '' means none, limit_min 0 means none.
    """

    quiet: Optional[str]
    limit_min: Optional[int]
    memory: Optional[bool] = None

    def check(self) -> 'Rule':
        """Raise RuleError when a field is not valid; return the rule."""
        if self.quiet is not None:
            parse_span(self.quiet)
        if self.limit_min is not None and not 0 <= int(self.limit_min) <= 1440:
            raise RuleError(f'daily limit {self.limit_min}: expected 0 to 1440 minutes')
        return self


class RuleBook:
    """Every child's rules, saved atomically as JSON; safe to share between threads."""

    def __init__(self, path: Optional[Path], quiet_hours: str, daily_limit_min: int):
        self.path = Path(path) if path else None
        self.default = Rule(quiet_hours, daily_limit_min, True).check()
        self._lock = threading.Lock()
        self._rules: Dict[str, Rule] = {}
        if self.path is not None and self.path.is_file():
            try:
                doc = json.loads(self.path.read_text(encoding='utf-8'))
                self._rules = {k: Rule(v.get('quiet'), v.get('limit_min'),
                                       v.get('memory')).check()
                               for k, v in doc.items()}
            except (ValueError, AttributeError, RuleError) as exc:
                raise RuleError(f'{self.path} is not a valid rule book ({exc}): fix or delete '
                                'it, then set the rules again from the console') from None

    def effective(self, user: str) -> Rule:
        """Return the rule that applies to a child: theirs, over all children's, over defaults."""
        with self._lock:
            quiet, limit, memory = self.default.quiet, self.default.limit_min, True
            for key in (ALL, user):
                rule = self._rules.get(key)
                if rule is not None:
                    quiet = quiet if rule.quiet is None else rule.quiet
                    limit = limit if rule.limit_min is None else rule.limit_min
                    memory = memory if rule.memory is None else rule.memory
        return Rule(quiet, limit, memory)

    def remembers(self, user: str) -> bool:
        """Return False when a caregiver switched child memory off for this child."""
        return self.effective(user).memory is not False

    def set(self, user: str, quiet: Optional[str], limit_min: Optional[int],
            memory: Optional[bool] = None) -> Rule:
        """Set (validated first) and save the rule of one child, or of all with user '*'."""
        rule = Rule(quiet, None if limit_min is None else int(limit_min),
                    None if memory is None else bool(memory)).check()
        with self._lock:
            self._rules[user] = rule
            self._save()
        return rule

    def remove(self, user: str) -> bool:
        """Drop a child's own rule (they follow the all-children rule again)."""
        with self._lock:
            gone = self._rules.pop(user, None) is not None
            if gone:
                self._save()
        return gone

    def to_dict(self) -> dict:
        """Return {'default': ..., 'rules': {user or '*': {quiet, limit_min}}} for the console."""
        with self._lock:
            return {'default': asdict(self.default),
                    'rules': {k: asdict(v) for k, v in sorted(self._rules.items())}}

    def _save(self) -> None:
        if self.path is None:
            return
        replace_file(self.path, json.dumps({k: asdict(v) for k, v in self._rules.items()},
                                           ensure_ascii=False))

    def verdict(self, user: str, now: dt.datetime, minutes_today: float) -> Optional[str]:
        """Return 'quiet_hours' or 'daily_limit' when a rule says not to talk now, else None."""
        rule = self.effective(user)
        if in_span(parse_span(rule.quiet or ''), now.hour * 60 + now.minute):
            return 'quiet_hours'
        if rule.limit_min and minutes_today >= rule.limit_min:
            return 'daily_limit'
        return None
