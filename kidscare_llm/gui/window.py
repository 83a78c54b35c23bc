"""The chat window (Qt 6): history, input line, Send / Stop / 채팅 초기화, user selector, status.

It knows nothing of topics or models: it calls a ChatClient's non-blocking methods and reacts
to its signals, which Qt delivers on the UI thread. Each user's conversation is kept apart.
"""

import json
import logging
import os
import signal
import sys
import threading
from typing import Dict, List, Optional

from PySide6.QtCore import QTimer
from PySide6.QtGui import QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QApplication

from kidscare_llm.gui.client import ChatClient
from kidscare_llm.gui.texts import TEXTS
from kidscare_llm.gui.transcript import source_label, Transcripts, Turn
from kidscare_llm.gui.widgets import ChatLayout, korean_font

__all__ = ['ChatWindow', 'Turn', 'application', 'display_problem', 'korean_font', 'run',
           'source_label']

log = logging.getLogger('kidscare_llm.gui')

READY_STATES = ('connected', 'ready')


class ChatWindow(ChatLayout):
    """The write-up's chat window, as a client of the chat node (or of a local engine).

    Long because it is every reaction of the window, to the user and to the client's signals;
    its widgets are gui/widgets.py, the conversations it shows gui/transcript.py.
    """

    def __init__(self, client: ChatClient, lang: str = 'ko', node_name: str = 'chat_node',
                 wait_s: float = 10.0):
        super().__init__(TEXTS[lang], client.user)
        self.t = TEXTS[lang]
        self.client = client
        self.node_name = node_name
        self.wait_s = wait_s
        self.user = client.user
        self.transcripts = Transcripts(self.t, self.user)
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
        for sig, slot in ((self.user_box.textActivated, self.switch_user),
                          (self.reset_button.clicked, self.reset_chat),
                          (self.history.anchorClicked, self._on_anchor),
                          (self.input.returnPressed, self.send),
                          (self.send_button.clicked, self.send),
                          (self.stop_button.clicked, self.stop),
                          (self.talk_button.pressed, lambda: client.push_to_talk(True)),
                          (self.talk_button.released, lambda: client.push_to_talk(False)),
                          (client.state, self._on_state), (client.info, self._on_info),
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
        try:
            done = json.loads(message)
        except ValueError:  # a node of an older version answers in prose
            done = {}
        user = done.get('user', self.user) if isinstance(done, dict) else self.user
        if isinstance(done, dict) and done.get('session'):
            self.sessions[user] = done['session']
        self.transcripts.reset(user)
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
        if name.startswith('src:') and self.transcripts.toggle_sources(self.user, int(name[4:])):
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
            turn.close(interrupted)
            self.last_reply = turn
        self.open_turn = None
        self.thinking = False
        self.stop_pressed = False
        if turn is not None and self.reply_user == self.user:
            self._render()
        self._refresh()

    def _add(self, user: str, turn: Turn) -> None:
        self.transcripts.add(user, turn)
        if user == self.user:
            self._render()

    def _show_user(self, user: str) -> None:
        self.user = user
        self.transcripts.of(user)
        if self.user_box.findText(user) < 0:
            self.user_box.addItem(user)
        self.user_box.blockSignals(True)
        self.user_box.setCurrentText(user)
        self.user_box.blockSignals(False)
        self._render()
        self._show_model()

    def transcript(self, user: Optional[str] = None) -> List[Turn]:
        """Return the turns of a user's conversation as this window knows them."""
        return self.transcripts.copy(user or self.user)

    # -- drawing -----------------------------------------------------------------------------
    def _render(self) -> None:
        """Redraw the current user's conversation (on turns, not on every streamed piece)."""
        self.history.setHtml(self.transcripts.html(self.user))
        self._scroll()

    def _update(self, turn: Turn) -> None:
        """Show new streamed text: append it at the end when possible, else redraw."""
        if self.reply_user != self.user:
            return  # kept for that user; shown when they come back
        new = self.transcripts.tail(self.user, turn)
        if new is None:
            return self._render()
        cursor = QTextCursor(self.history.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(new, QTextCharFormat())
        self._scroll()

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
