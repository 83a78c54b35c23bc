"""The chat window's conversations without Qt: turns, each user's transcript, and its HTML.

Kept apart from the window so what a child sees can be tested without a display: every word
a child (or a peer on the network) typed is escaped before it becomes HTML, each user's
conversation stays their own, and streamed text is appended rather than redrawn.
"""

from dataclasses import dataclass, field
import html
import os
from typing import Dict, List, Mapping, Optional


@dataclass
class Turn:
    """One line of a conversation: who said it, what, and (robot) the passages it used."""

    role: str  # user | robot | system
    text: str = ''
    heard: bool = False  # user turn that came from speech (STT), not from this window
    sources: List[dict] = field(default_factory=list)
    interrupted: bool = False
    open: bool = False  # robot turn still streaming
    expanded: bool = False  # sources unfolded
    pieces: str = ''  # streamed text (/robot_reply_stream)
    sentences: List[str] = field(default_factory=list)  # whole sentences (/robot_reply_partial)
    shown: str = ''  # text currently in the document (to append only what is new)

    def display(self) -> str:
        """Return the text to show: final, else streamed pieces, else the sentences so far."""
        if not self.open:
            return self.text
        return self.pieces if self.pieces else ' '.join(self.sentences)

    def close(self, interrupted: bool = False) -> None:
        """End a streamed turn; without a final text it keeps what was streamed so far."""
        if not self.text:
            self.text = self.display().strip()
        self.open = False
        self.interrupted = interrupted


def source_label(src: Mapping) -> str:
    """Return 'title — file#position (score 0.61)' for one citation (not yet escaped)."""
    source = str(src.get('source', '?'))
    name = source if ':' in source and not os.path.isabs(source) else os.path.basename(source)
    title = src.get('title')
    where = f'{name}#{src.get("position", "?")}'
    score = src.get('score')
    text = f'{title} — {where}' if title else where
    return text + (f' (score {score:.2f})' if isinstance(score, (int, float)) else '')


class Transcripts:
    """Each user's conversation as the window knows it, kept apart, and drawn as HTML.

    texts are the window's strings (gui/texts.py) for one language; only they go into the
    HTML unescaped.
    """

    def __init__(self, texts: Mapping[str, str], user: str):
        self.texts = texts
        self.turns: Dict[str, List[Turn]] = {user: []}

    def of(self, user: str) -> List[Turn]:
        """Return user's list of turns itself (created empty for a new user)."""
        return self.turns.setdefault(user, [])

    def copy(self, user: str) -> List[Turn]:
        """Return a copy of user's turns (empty for a user not seen yet)."""
        return list(self.turns.get(user, []))

    def add(self, user: str, turn: Turn) -> None:
        """Append a turn to user's conversation."""
        self.of(user).append(turn)

    def reset(self, user: str) -> None:
        """Start user's conversation over with the 'reset done' note, as a new session does."""
        self.turns[user] = [Turn('system', self.texts['reset_done'])]

    def toggle_sources(self, user: str, index: int) -> bool:
        """Fold or unfold the sources of user's turn at index; False when there is none."""
        turns = self.turns.get(user, [])
        if not 0 <= index < len(turns):
            return False
        turns[index].expanded = not turns[index].expanded
        return True

    def html(self, user: str) -> str:
        """Return user's whole conversation as HTML, and remember each turn as shown."""
        turns = self.turns.get(user, [])
        for turn in turns:
            turn.shown = turn.display()
        return ''.join(self.turn_html(user, i, turn) for i, turn in enumerate(turns))

    def tail(self, user: str, turn: Turn) -> Optional[str]:
        """Return the streamed text to append for turn, or None when a redraw is needed.

        Appending is possible only for the last turn on screen whose new text extends what
        is shown (pieces replacing sentences rewrite it); the turn then counts as shown.
        """
        turns = self.turns.get(user, [])
        new = turn.display()
        if not (turns and turns[-1] is turn and turn.shown and new.startswith(turn.shown)):
            return None
        added, turn.shown = new[len(turn.shown):], new
        return added

    def turn_html(self, user: str, index: int, turn: Turn) -> str:
        """Return one turn as HTML; its words, the user's name and the sources are escaped."""
        t = self.texts
        text = html.escape(turn.display()).replace('\n', '<br>')
        if turn.role == 'system':
            return f'<p style="color:#777777"><b>{t["robot"]}:</b>&nbsp;{text}</p>'
        if turn.role == 'user':
            who = html.escape(user) + (f' ({t["heard"]})' if turn.heard else '')
            return f'<p><b style="color:#1b5e20">{who}:</b>&nbsp;{text}</p>'
        out = f'<p><b style="color:#0d47a1">{t["robot"]}:</b>&nbsp;{text}'
        if turn.interrupted:
            out += f' <i style="color:#b23c17">{t["interrupted"]}</i>'
        out += '</p>'
        if turn.sources and not turn.open:
            arrow = '▾' if turn.expanded else '▸'
            label = t['sources'].format(count=len(turn.sources))
            out += (f'<p style="margin-left:18px"><a href="src:{index}">{label} {arrow}</a>'
                    '</p>')
            if turn.expanded:
                for n, src in enumerate(turn.sources, 1):
                    out += ('<p style="margin-left:30px; color:#555555">'
                            f'[{n}] {html.escape(source_label(src))}</p>')
        return out
