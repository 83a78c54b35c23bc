"""The chat window's widgets and their layout, without behaviour (window.py connects them).

Apart from the window so its behaviour reads on its own; what the window shows of a
conversation is gui/transcript.py.
"""

from typing import Mapping, Optional

from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QLineEdit, QMainWindow,
                               QPushButton, QTextBrowser, QVBoxLayout, QWidget)

KOREAN_FONTS = ('NanumGothic', 'NanumBarunGothic', 'Noto Sans CJK KR', 'Noto Sans KR',
                'Malgun Gothic', 'Apple SD Gothic Neo')


def korean_font() -> Optional[QFont]:
    """Return a font that has Hangul (Debian's fonts-nanum), or None to keep Qt's default."""
    families = set(QFontDatabase.families())
    for name in KOREAN_FONTS:
        if name in families:
            return QFont(name, 11)
    return None


class ChatLayout(QMainWindow):
    """User selector and reset on top, the history, the input row, notices and status below."""

    def __init__(self, t: Mapping[str, str], user: str):
        super().__init__()
        self.setWindowTitle(t['title'])
        font = korean_font()
        if font is not None:
            self.setFont(font)
        self.resize(720, 560)
        self.user_box = QComboBox()
        self.user_box.setEditable(True)
        self.user_box.addItem(user)
        self.user_box.setMinimumWidth(160)
        top = QHBoxLayout()
        top.addWidget(QLabel(t['user']))
        top.addWidget(self.user_box)
        top.addStretch(1)
        self.reset_button = QPushButton(t['reset'])
        top.addWidget(self.reset_button)

        self.history = QTextBrowser()
        self.history.setOpenLinks(False)  # 'src:<index>' links fold sources, in the window

        self.input = QLineEdit()
        self.input.setPlaceholderText(t['placeholder'])
        self.send_button = QPushButton(t['send'])
        self.stop_button = QPushButton(t['stop'])
        self.talk_button = QPushButton(t['talk'])
        self.talk_button.setVisible(False)  # until an STT node offers push-to-talk
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
