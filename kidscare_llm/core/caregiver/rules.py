"""Rules a caregiver sets, for all children or one: quiet hours, a daily talk limit, switches.

The switches are ChatGPT's parental controls: memory (remember what the child says), voice
(the robot speaks its replies; off: text only) and strict (stricter safety: see
SafetyChecker.check_input). The chat node owns the rule book (caregiver/rules.json under the
data dir, changed only by caregiver commands); the node's parameters rules.quiet_hours and
rules.daily_limit_min are the defaults under it. A child's own rule overrides the
all-children rule field by field. The book also keeps which safety categories a caregiver
asked to be alerted about beyond the policy's own alerts (which cannot be switched off).
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


SWITCHES = ('memory', 'voice', 'strict')  # on/off fields of a rule; defaults True, True, False


@dataclass(frozen=True)
class Rule:
    """One rule: quiet hours, daily limit in minutes and the switches; None: inherit.

    quiet '' means none, limit_min 0 means none.
    """

    quiet: Optional[str]
    limit_min: Optional[int]
    memory: Optional[bool] = None
    voice: Optional[bool] = None
    strict: Optional[bool] = None

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
        self.default = Rule(quiet_hours, daily_limit_min, True, True, False).check()
        self._lock = threading.Lock()
        self._rules: Dict[str, Rule] = {}
        self._alerts: Dict[str, bool] = {}  # safety category: alert a caregiver too
        if self.path is not None and self.path.is_file():
            try:
                doc = json.loads(self.path.read_text(encoding='utf-8'))
                rules = doc['rules'] if doc.get('version') == 2 else doc  # 1: rules only
                self._alerts = {str(k): bool(v) for k, v in doc.get('alerts', {}).items()} \
                    if doc.get('version') == 2 else {}
                self._rules = {k: Rule(v.get('quiet'), v.get('limit_min'),
                                       *(v.get(name) for name in SWITCHES)).check()
                               for k, v in rules.items()}
            except (ValueError, AttributeError, KeyError, RuleError) as exc:
                raise RuleError(f'{self.path} is not a valid rule book ({exc}): fix or delete '
                                'it, then set the rules again from the console') from None

    def effective(self, user: str) -> Rule:
        """Return the rule that applies to a child: theirs, over all children's, over defaults."""
        fields = asdict(self.default)
        with self._lock:
            for key in (ALL, user):
                rule = self._rules.get(key)
                if rule is not None:
                    fields.update({k: v for k, v in asdict(rule).items() if v is not None})
        return Rule(**fields)

    def remembers(self, user: str) -> bool:
        """Return False when a caregiver switched child memory off for this child."""
        return self.effective(user).memory is not False

    def speaks(self, user: str) -> bool:
        """Return False when a caregiver switched the robot's voice off for this child."""
        return self.effective(user).voice is not False

    def strict(self, user: str) -> bool:
        """Return True when a caregiver asked for stricter safety for this child."""
        return self.effective(user).strict is True

    def set(self, user: str, quiet: Optional[str], limit_min: Optional[int],
            memory: Optional[bool] = None, voice: Optional[bool] = None,
            strict: Optional[bool] = None) -> Rule:
        """Set (validated first) and save the rule of one child, or of all with user '*'."""
        switches = (None if v is None else bool(v) for v in (memory, voice, strict))
        rule = Rule(quiet, None if limit_min is None else int(limit_min), *switches).check()
        with self._lock:
            self._rules[user] = rule
            self._save()
        return rule

    def alerts_also(self, category: str) -> bool:
        """Return True when a caregiver asked to be alerted about this category too."""
        with self._lock:
            return self._alerts.get(category, False)

    def set_alert(self, category: str, on: bool) -> None:
        """Ask for (or stop) alerts of one category beyond the policy's; saved."""
        with self._lock:
            self._alerts[str(category)] = bool(on)
            self._save()

    def remove(self, user: str) -> bool:
        """Drop a child's own rule (they follow the all-children rule again)."""
        with self._lock:
            gone = self._rules.pop(user, None) is not None
            if gone:
                self._save()
        return gone

    def to_dict(self) -> dict:
        """Return {'default', 'rules': {user or '*': fields}, 'alerts': {category: on}}."""
        with self._lock:
            return {'default': asdict(self.default),
                    'rules': {k: asdict(v) for k, v in sorted(self._rules.items())},
                    'alerts': dict(sorted(self._alerts.items()))}

    def _save(self) -> None:
        if self.path is None:
            return
        replace_file(self.path, json.dumps(
            {'version': 2, 'rules': {k: asdict(v) for k, v in self._rules.items()},
             'alerts': self._alerts}, ensure_ascii=False))

    def verdict(self, user: str, now: dt.datetime, minutes_today: float) -> Optional[str]:
        """Return 'quiet_hours' or 'daily_limit' when a rule says not to talk now, else None."""
        rule = self.effective(user)
        if in_span(parse_span(rule.quiet or ''), now.hour * 60 + now.minute):
            return 'quiet_hours'
        if rule.limit_min and minutes_today >= rule.limit_min:
            return 'daily_limit'
        return None
