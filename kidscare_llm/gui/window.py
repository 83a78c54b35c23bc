"""The chat window (Qt 6): history, input line, Send / Stop / 채팅 초기화, user selector, status.

It knows nothing of topics or models: it calls a ChatClient's non-blocking methods and reacts
to its signals, which Qt delivers on the UI thread. Each user's conversation is kept apart.
"""

from dataclasses import dataclass, field
import html
import logging
import os
import re
import signal
import sys
import threading
from typing import Dict, List, Optional

from PySide6.QtCore import QTimer
from PySide6.QtGui import QFont, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (QApplication, QComboBox, QHBoxLayout, QLabel, QLineEdit,
                               QMainWindow, QPushButton, QTextBrowser, QVBoxLayout, QWidget)

from kidscare_llm.gui.client import ChatClient
from kidscare_llm.gui.texts import TEXTS

log = logging.getLogger('kidscare_llm.gui')

KOREAN_FONTS = ('NanumGothic', 'NanumBarunGothic', 'Noto Sans CJK KR', 'Noto Sans KR',
                'Malgun Gothic', 'Apple SD Gothic Neo')
SESSION_RE = re.compile(r'new session (\S+) for (\S+)')
READY_STATES = ('connected', 'ready')


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


def korean_font() -> Optional[QFont]:
    """Return a font that has Hangul (Debian's fonts-nanum), or None to keep Qt's default."""
    families = set(QFontDatabase.families())
    for name in KOREAN_FONTS:
        if name in families:
            return QFont(name, 11)
    return None


class ChatWindow(QMainWindow):
    """The write-up's chat window, as a client of the chat node (or of a local engine)."""

    def __init__(self, client: ChatClient, lang: str = 'ko', node_name: str = 'chat_node',
                 wait_s: float = 10.0):
        super().__init__()
        self.client = client
        self.t = TEXTS[lang]
        self.node_name = node_name
        self.wait_s = wait_s
        self.user = client.user
        self.turns: Dict[str, List[Turn]] = {self.user: []}
        self.sessions: Dict[str, str] = {}
        self.state = 'connecting'
        self.thinking = False
        self.listening = False
        self.open_turn: Optional[Turn] = None
        self.reply_user = self.user
        self.last_reply: Optional[Turn] = None
        self.stop_pressed = False
        self.off_thread_calls = 0
        self.info: dict = {}
        self._build()
        for sig, slot in ((client.state, self._on_state), (client.info, self._on_info),
                          (client.piece, self._on_piece), (client.sentence, self._on_sentence),
                          (client.sources, self._on_sources), (client.final, self._on_final),
                          (client.heard, self._on_heard),
                          (client.user_switched, self._on_user_switched),
                          (client.reset_done, self._on_reset_done),
                          (client.notice, self._on_notice),
                          (client.listening, self._on_listening),
                          (client.ptt_available, self._on_ptt_available)):
            sig.connect(slot)
        self._refresh()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        t = self.t
        self.setWindowTitle(t['title'])
        font = korean_font()
        if font is not None:
            self.setFont(font)
        self.resize(720, 560)
        self.user_box = QComboBox()
        self.user_box.setEditable(True)
        self.user_box.addItem(self.user)
        self.user_box.setMinimumWidth(160)
        self.user_box.textActivated.connect(self.switch_user)
        top = QHBoxLayout()
        top.addWidget(QLabel(t['user']))
        top.addWidget(self.user_box)
        top.addStretch(1)
        self.reset_button = QPushButton(t['reset'])
        self.reset_button.clicked.connect(self.reset_chat)
        top.addWidget(self.reset_button)

        self.history = QTextBrowser()
        self.history.setOpenLinks(False)
        self.history.anchorClicked.connect(self._on_anchor)

        self.input = QLineEdit()
        self.input.setPlaceholderText(t['placeholder'])
        self.input.returnPressed.connect(self.send)
        self.send_button = QPushButton(t['send'])
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton(t['stop'])
        self.stop_button.clicked.connect(self.stop)
        self.talk_button = QPushButton(t['talk'])
        self.talk_button.pressed.connect(lambda: self.client.push_to_talk(True))
        self.talk_button.released.connect(lambda: self.client.push_to_talk(False))
        self.talk_button.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.input, 1)
        row.addWidget(self.talk_button)
        row.addWidget(self.send_button)
        row.addWidget(self.stop_button)

        self.notice = QLabel('')
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet('color: #b23c17')
        self.connection = QLabel('')
        self.connection.setWordWrap(True)
        self.model = QLabel(t['model_unknown'])
        self.activity = QLabel('')
        self.activity.setStyleSheet('color: #0d47a1; font-weight: bold')
        status = QHBoxLayout()
        status.addWidget(self.connection, 1)
        status.addWidget(self.activity)

        layout = QVBoxLayout()
        layout.addLayout(top)
        layout.addWidget(self.history, 1)
        layout.addLayout(row)
        layout.addWidget(self.notice)
        layout.addLayout(status)
        layout.addWidget(self.model)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)
        self.input.setFocus()

    # -- user actions --------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Return True when the node (or the local engine) can take an utterance."""
        return self.state in READY_STATES

    def send(self) -> None:
        """Send the input line; empty, too long, not connected or busy: say so, keep the text."""
        text = self.input.text().strip()
        if not text:
            return self._say('empty')
        if len(text) > self.client.max_chars:
            return self._say('too_long', length=len(text), limit=self.client.max_chars)
        if not self.ready:
            return self._say('not_ready')
        if self.thinking:
            return self._say('busy')
        self._say(None)
        self.input.clear()
        self._add(self.user, Turn('user', text))
        self._begin_reply()
        self.client.send(text)

    def stop(self) -> None:
        """Cancel the reply being generated (the node keeps the part said so far)."""
        if self.thinking:
            self.stop_pressed = True
            self.client.cancel()

    def reset_chat(self) -> None:
        """채팅 초기화: ask for a new session for the current user."""
        self.reset_button.setEnabled(False)
        self.client.reset()

    def switch_user(self, user: str) -> None:
        """Talk as another user; their own conversation comes back on screen."""
        user = user.strip()
        if not user or user == self.user:
            return
        self._show_user(user)
        self.client.set_user(user)

    # -- client signals (UI thread) -------------------------------------------------------------
    def _ui(self) -> None:
        """Count (and log) any slot that runs off the UI thread: there must be none."""
        if threading.current_thread() is not threading.main_thread():
            self.off_thread_calls += 1
            log.error('chat window touched from thread %s', threading.current_thread().name)

    def _on_state(self, state: str, detail: str) -> None:
        self._ui()
        was_thinking = self.thinking
        self.state = state
        if state in ('lost', 'failed') and was_thinking:
            self._end_reply(interrupted=True)
            self._say('lost_mid_reply')
        key = state if state in self.t else 'waiting'
        self.connection.setText(self.t[key].format(node=self.node_name, seconds=self.wait_s,
                                                   detail=detail))
        self._refresh()

    def _on_info(self, info: dict) -> None:
        self._ui()
        self.info = dict(info)
        if info.get('session') and info.get('user', self.user) == self.user:
            self.sessions[self.user] = info['session']
        self._show_model()

    def _on_piece(self, piece: str) -> None:
        self._ui()
        turn = self._reply_turn()
        turn.pieces += piece
        self._update(turn)

    def _on_sentence(self, sentence: str) -> None:
        self._ui()
        turn = self._reply_turn()
        turn.sentences.append(sentence)
        if not turn.pieces:
            self._update(turn)

    def _on_sources(self, items: list) -> None:
        self._ui()
        turn = self.open_turn or self.last_reply
        if turn is not None and not turn.sources:
            turn.sources = list(items)
            if not turn.open:
                self._render()

    def _on_final(self, text: str) -> None:
        self._ui()
        turn = self.open_turn
        if turn is None and not text:
            self._end_reply()
            return
        if turn is None:
            turn = self._reply_turn()
        turn.text = text.strip() or turn.display().strip()
        self._end_reply(interrupted=self.stop_pressed)

    def _on_heard(self, text: str) -> None:
        self._ui()
        self._add(self.user, Turn('user', text.strip(), heard=True))
        self._begin_reply()

    def _on_user_switched(self, user: str) -> None:
        self._ui()
        if user != self.user:
            self._show_user(user)

    def _on_reset_done(self, ok: bool, message: str) -> None:
        self._ui()
        self.reset_button.setEnabled(True)
        if not ok:
            return self._say('reset_failed', detail=message)
        match = SESSION_RE.search(message)
        user = match.group(2) if match else self.user
        if match:
            self.sessions[user] = match.group(1)
        self.turns[user] = [Turn('system', self.t['reset_done'])]
        self.last_reply = None
        if user == self.user:
            self._render()
        self._show_model()

    def _on_notice(self, key: str, detail: str) -> None:
        self._ui()
        self._say(key if key in self.t else 'error', detail=detail)

    def _on_listening(self, on: bool) -> None:
        self._ui()
        self.listening = bool(on)
        self._refresh()

    def _on_ptt_available(self, on: bool) -> None:
        self._ui()
        self.talk_button.setVisible(bool(on))

    def _on_anchor(self, url) -> None:
        """Fold or unfold the sources of one reply (links 'src:<index>')."""
        name = url.toString()
        if name.startswith('src:'):
            turns = self.turns[self.user]
            index = int(name[4:])
            if 0 <= index < len(turns):
                turns[index].expanded = not turns[index].expanded
                self._render()

    # -- conversation model ----------------------------------------------------------------------
    def _begin_reply(self) -> None:
        self.thinking = True
        self.stop_pressed = False
        self.reply_user = self.user
        self._refresh()

    def _reply_turn(self) -> Turn:
        """Return the robot turn being streamed, opening one if needed."""
        if self.open_turn is None:
            if not self.thinking:  # a reply to someone else's utterance: show it too
                self._begin_reply()
            self.open_turn = Turn('robot', open=True)
            self._add(self.reply_user, self.open_turn)
        return self.open_turn

    def _end_reply(self, interrupted: bool = False) -> None:
        turn = self.open_turn
        if turn is not None:
            if not turn.text:
                turn.text = turn.display().strip()
            turn.open = False
            turn.interrupted = interrupted
            self.last_reply = turn
        self.open_turn = None
        self.thinking = False
        self.stop_pressed = False
        if turn is not None and self.reply_user == self.user:
            self._render()
        self._refresh()

    def _add(self, user: str, turn: Turn) -> None:
        self.turns.setdefault(user, []).append(turn)
        if user == self.user:
            self._render()

    def _show_user(self, user: str) -> None:
        self.user = user
        self.turns.setdefault(user, [])
        if self.user_box.findText(user) < 0:
            self.user_box.addItem(user)
        self.user_box.blockSignals(True)
        self.user_box.setCurrentText(user)
        self.user_box.blockSignals(False)
        self._render()
        self._show_model()

    def transcript(self, user: Optional[str] = None) -> List[Turn]:
        """Return the turns of a user's conversation as this window knows them."""
        return list(self.turns.get(user or self.user, []))

    # -- drawing -----------------------------------------------------------------------------
    def _turn_html(self, index: int, turn: Turn) -> str:
        text = html.escape(turn.display()).replace('\n', '<br>')
        if turn.role == 'system':
            return (f'<p style="color:#777777"><b>{self.t["robot"]}:</b>&nbsp;{text}</p>')
        if turn.role == 'user':
            who = html.escape(self.user) + (f' ({self.t["heard"]})' if turn.heard else '')
            return f'<p><b style="color:#1b5e20">{who}:</b>&nbsp;{text}</p>'
        out = f'<p><b style="color:#0d47a1">{self.t["robot"]}:</b>&nbsp;{text}'
        if turn.interrupted:
            out += f' <i style="color:#b23c17">{self.t["interrupted"]}</i>'
        out += '</p>'
        if turn.sources and not turn.open:
            arrow = '▾' if turn.expanded else '▸'
            label = self.t['sources'].format(count=len(turn.sources))
            out += (f'<p style="margin-left:18px"><a href="src:{index}">{label} {arrow}</a>'
                    '</p>')
            if turn.expanded:
                for n, src in enumerate(turn.sources, 1):
                    out += ('<p style="margin-left:30px; color:#555555">'
                            f'[{n}] {html.escape(source_label(src))}</p>')
        return out

    def _render(self) -> None:
        """Redraw the current user's conversation (on turns, not on every streamed piece)."""
        turns = self.turns.get(self.user, [])
        for turn in turns:
            turn.shown = turn.display()
        self.history.setHtml(''.join(self._turn_html(i, t) for i, t in enumerate(turns)))
        self._scroll()

    def _update(self, turn: Turn) -> None:
        """Show new streamed text: append it at the end when possible, else redraw."""
        turns = self.turns.get(self.reply_user, [])
        if self.reply_user != self.user:
            return  # kept for that user; shown when they come back
        new = turn.display()
        if turns and turns[-1] is turn and new.startswith(turn.shown) and turn.shown:
            cursor = QTextCursor(self.history.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(new[len(turn.shown):], QTextCharFormat())
            turn.shown = new
            self._scroll()
        else:
            self._render()

    def _scroll(self) -> None:
        bar = self.history.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _say(self, key: Optional[str], **values) -> None:
        self.notice.setText(self.t[key].format(**values) if key else '')

    def _show_model(self) -> None:
        info = self.info
        text = self.t['model'].format(model=info.get('model', '?'),
                                      backend=info.get('backend', '?')) \
            if info.get('model') else self.t['model_unknown']
        session = self.sessions.get(self.user)
        self.model.setText(f'{text} · {self.user}' + (f' / {session}' if session else ''))

    def _refresh(self) -> None:
        """Enable what can be used now and show what is going on."""
        self.send_button.setEnabled(self.ready and not self.thinking)
        self.stop_button.setEnabled(self.thinking)
        self.reset_button.setEnabled(self.ready and not self.thinking)
        self.user_box.setEnabled(self.state != 'failed')
        self.activity.setText(self.t['listening'] if self.listening else
                              self.t['thinking'] if self.thinking else '')

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Stop the client's thread with the window."""
        self.client.close()
        super().closeEvent(event)


def source_label(src: dict) -> str:
    """Return 'title — file#position (score 0.61)' for one citation."""
    source = str(src.get('source', '?'))
    name = source if ':' in source and not os.path.isabs(source) else os.path.basename(source)
    title = src.get('title')
    where = f'{name}#{src.get("position", "?")}'
    score = src.get('score')
    text = f'{title} — {where}' if title else where
    return text + (f' (score {score:.2f})' if isinstance(score, (int, float)) else '')


def display_problem() -> Optional[str]:
    """Return why Qt cannot open a window here (no display), or None."""
    if sys.platform.startswith('linux') and not (os.environ.get('DISPLAY')
                                                 or os.environ.get('WAYLAND_DISPLAY')
                                                 or os.environ.get('QT_QPA_PLATFORM')):
        return ('no display: run it in a desktop session (DISPLAY or WAYLAND_DISPLAY), or set '
                'QT_QPA_PLATFORM=offscreen for a headless test')
    return None


def application() -> QApplication:
    """Return the QApplication, creating it once."""
    return QApplication.instance() or QApplication(sys.argv[:1])


def run(client: ChatClient, lang: str = 'ko', node_name: str = 'chat_node',
        wait_s: float = 10.0) -> int:
    """Show the window until it is closed (Ctrl-C closes it too); return Qt's exit code."""
    app = application()
    window = ChatWindow(client, lang, node_name, wait_s)
    window.show()
    client.start()
    signal.signal(signal.SIGINT, lambda *_: window.close())
    tick = QTimer()  # lets Python run its signal handlers while Qt's loop runs
    tick.start(200)
    tick.timeout.connect(lambda: None)
    try:
        return app.exec()
    finally:
        client.close()
