"""Dates a child says ('내일', '다음 주 토요일', '12월 24일', 'next Friday'), made absolute.

Resolved against the moment the words were said, so "내일 치과 가" said on Monday stays
Tuesday's appointment when it is recalled on Thursday (and is then known to be past).
"""

import datetime as dt
import re
from typing import Optional

_DAYS_KO = '월화수목금토일'
_DAYS_EN = ('monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday')
_WEEK = r'(?P<week>이번\s*주|이번주|요번\s*주|다음\s*주|담\s*주|다다음\s*주|next\s+week|this\s+week)'
_DAY = r'(?P<day>[월화수목금토일])\s*(?:요일|욜)'
_WEEKEND = r'(?P<wk>이번\s*주말|다음\s*주말|담\s*주말|주말|this\s+weekend|next\s+weekend|weekend)'
_OFFSETS = (  # word, days from the day it was said
    (r'글피', 3), (r'모레|모래|낼모레', 2), (r'내일|낼|tomorrow', 1), (r'오늘|today|tonight', 0),
    (r'그저께|그제', -2), (r'어제|yesterday', -1))
_HOLIDAYS = ((r'크리스마스|성탄절|christmas', (12, 25)), (r'어린이\s*날', (5, 5)),
             (r'크리스마스\s*이브|christmas\s+eve', (12, 24)))
_MONTH_DAY = re.compile(r'(?P<m>\d{1,2})\s*월\s*(?P<d>\d{1,2})\s*일')
_DAY_ONLY = re.compile(r'(?<![\d월])(?P<d>\d{1,2})\s*일\s*(?:에|날|이|은|까지)')
_AFTER = re.compile(r'(?P<n>\d{1,2}|한|두|세|일)\s*(?P<unit>일|주일?|밤)\s*(?:뒤|후|있으면|지나면)|'
                    r'in\s+(?P<en>\d{1,2})\s+(?P<enunit>days?|weeks?)')
_HANGUL_NUM = {'한': 1, '일': 1, '두': 2, '세': 3}
_EN_WEEKDAY = re.compile(r'\b(?:(?P<q>next|this|on)\s+)?(?P<day>' + '|'.join(_DAYS_EN) + r')\b')


def resolve_date(text: str, said: dt.datetime) -> Optional[dt.date]:
    """Return the date a text talks about, resolved at the moment it was said, or None."""
    low = text.lower()
    today = said.date()
    for pattern, (month, day) in sorted(_HOLIDAYS, key=lambda h: -len(h[0])):
        if re.search(pattern, low):
            return _next_yearly(today, month, day)
    found = _MONTH_DAY.search(low)
    if found:
        return _next_yearly(today, int(found['m']), int(found['d']))
    found = re.search(_WEEK + r'\s*' + _DAY, low) or re.search(_DAY, low)
    if found:
        weeks = _weeks_ahead(found.groupdict().get('week'))
        return _weekday(today, _DAYS_KO.index(found['day']), weeks)
    found = _EN_WEEKDAY.search(low)
    if found:
        weeks = 1 if found['q'] == 'next' else None
        return _weekday(today, _DAYS_EN.index(found['day']), weeks)
    found = re.search(_WEEKEND, low)
    if found:
        weeks = 1 if re.match(r'다음|담|next', found['wk']) else None
        return _weekday(today, 5, weeks)
    found = _AFTER.search(low)
    if found:
        if found['en']:
            n, unit = int(found['en']), found['enunit']
        else:
            n = int(found['n']) if found['n'].isdigit() else _HANGUL_NUM[found['n']]
            unit = found['unit']
        return today + dt.timedelta(days=n * (7 if unit.startswith(('주', 'week')) else 1))
    for pattern, offset in _OFFSETS:
        if re.search(pattern, low):
            return today + dt.timedelta(days=offset)
    found = re.search(r'다음\s*주|담\s*주|next\s+week', low)
    if found:
        return _weekday(today, 0, 1)
    found = _DAY_ONLY.search(low)
    if found and 1 <= int(found['d']) <= 31:
        return _next_monthly(today, int(found['d']))
    return None


def _weeks_ahead(week: Optional[str]) -> Optional[int]:
    """Return 0 (this week), 1 (next), 2 (the one after) or None (no week said)."""
    if not week:
        return None
    week = week.replace(' ', '')
    if week.startswith('다다음'):
        return 2
    return 1 if week.startswith(('다음', '담', 'next')) else 0


def _weekday(today: dt.date, weekday: int, weeks: Optional[int]) -> dt.date:
    """Return that weekday: in this/next week (weeks 0/1/2), else its next occurrence."""
    if weeks is None:
        return today + dt.timedelta(days=(weekday - today.weekday()) % 7)
    monday = today - dt.timedelta(days=today.weekday())
    return monday + dt.timedelta(days=7 * weeks + weekday)


def _next_yearly(today: dt.date, month: int, day: int) -> Optional[dt.date]:
    """Return month/day this year, or next year once it is more than a month past."""
    try:
        date = dt.date(today.year, month, day)
    except ValueError:
        return None
    if (today - date).days > 31:
        date = date.replace(year=today.year + 1)
    return date


def _next_monthly(today: dt.date, day: int) -> Optional[dt.date]:
    """Return that day of this month, or of next month when it has passed."""
    year, month = today.year, today.month
    if day < today.day:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None
