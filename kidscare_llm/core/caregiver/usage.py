"""Time a child spent talking with the robot, per day, from when their messages were written.

A stretch of talk is a run of messages less than GAP_S apart; it lasts from its first message
to its last, plus MESSAGE_S for the last reply to be heard. Messages are what the session
database holds, so the figure needs no other bookkeeping and survives restarts.
"""

import datetime as dt
from typing import Iterable, List, Tuple

GAP_S = 300.0  # five silent minutes end a stretch of talk
MESSAGE_S = 15.0  # the last message of a stretch: about one sentence heard


def talk_seconds(times: Iterable[float]) -> float:
    """Return the seconds of talk the message times (unix, any order) stand for."""
    ordered = sorted(times)
    if not ordered:
        return 0.0
    total = MESSAGE_S
    for before, after in zip(ordered, ordered[1:]):
        gap = after - before
        total += gap if gap < GAP_S else MESSAGE_S
    return total


def day_start(day: dt.date) -> float:
    """Return local midnight at the start of a day as unix time."""
    return dt.datetime.combine(day, dt.time()).timestamp()


def per_day(times: Iterable[float], days: int, today: dt.date) -> List[Tuple[dt.date, float]]:
    """Return [(day, minutes)] for the last `days` days up to today (local time), oldest first."""
    buckets = {today - dt.timedelta(days=i): [] for i in range(days)}
    for t in times:
        day = dt.datetime.fromtimestamp(t).date()
        if day in buckets:
            buckets[day].append(t)
    return [(day, talk_seconds(buckets[day]) / 60.0) for day in sorted(buckets)]
