"""A memory item: one thing a child said worth keeping, with where and when it was said."""

from dataclasses import asdict, dataclass
import datetime as dt
from typing import Optional

# What a child tells a kids-care robot that is worth keeping (config/memory/rules.yaml).
KINDS = ('preference', 'health', 'family', 'pet', 'friend', 'fear', 'hobby', 'school',
         'event', 'lost', 'wish', 'other')
ACTIVE, SUPERSEDED = 'active', 'superseded'


@dataclass
class MemoryItem:
    """One remembered statement of one child, in the child's own words."""

    id: str
    user: str
    kind: str
    text: str
    created_at: float  # unix seconds, when the child said it
    said_on: str = ''  # 'YYYY-MM-DD', the child's local date when said
    session: str = ''
    message_id: Optional[int] = None
    event_date: Optional[str] = None  # 'YYYY-MM-DD' for upcoming events, resolved when said
    status: str = ACTIVE  # superseded items are history: kept, never recalled
    superseded_by: Optional[str] = None
    score: float = 0.0  # set by recall

    def to_dict(self) -> dict:
        """Return the JSON-able form (CLI, console, export)."""
        return asdict(self)

    def is_past(self, today: dt.date) -> Optional[bool]:
        """Return whether its event date is before today (None: no event date)."""
        if not self.event_date:
            return None
        return self.event_date < today.isoformat()

    def prompt_line(self, today: dt.date) -> str:
        """Return the line the prompt carries: when it was said, the event's date, the words."""
        when = self.said_on
        if self.event_date:
            if self.event_date == today.isoformat():
                state = '오늘'
            else:
                state = '지났음' if self.is_past(today) else '앞으로'
            when += f', 날짜 {self.event_date} {state}'
        return f'({when}) {self.text}'

    def citation(self) -> dict:
        """Return the citation on /robot_reply_sources (the words stay on the robot)."""
        return {'source': 'memory', 'memory_id': self.id, 'user': self.user,
                'kind': self.kind, 'text': self.text, 'said_on': self.said_on,
                'event_date': self.event_date, 'score': round(self.score, 4)}
