"""Regenerate docs/chat-window.png: the chat window mid-conversation, with a real model.

    .venv/bin/python docs/screenshot.py [--lang ko|en] [--params-file FILE] [-p NAME=VALUE ...]

It runs the chat engine in-process (`kidscare-llm gui --local`) with the packaged SmolLM2-135M
(or the model the parameters name), in a throw-away data dir, offscreen unless QT_QPA_PLATFORM
says otherwise: two turns, the sources of the second unfolded, and the picture taken while the
third reply is still streaming. SmolLM2 answers Korean with garbled text; with the Korean 8B
model (-p model.path=...) the same command shows real answers.
"""

import argparse
import os
from pathlib import Path
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')

from PySide6.QtCore import QUrl  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from kidscare_llm.core import paths, settings  # noqa: E402
from kidscare_llm.gui.local import LocalClient  # noqa: E402
from kidscare_llm.gui.window import application, ChatWindow  # noqa: E402

OUT = Path(__file__).resolve().parent / 'chat-window.png'
TURNS = {'ko': ['안녕! 나는 라이언이야.', '라이언이 좋아하는 음식은 뭐야?', '오늘 공원에서 뭐 하고 놀까?'],
         'en': ['Hi! I am Lion.', 'What food does Lion like?', 'What shall we play in the park?']}


def wait_for(condition, timeout):
    """Run the Qt event loop until condition() holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f'screenshot: timed out after {timeout:.0f} s')
        QTest.qWait(20)


def main() -> int:
    """Drive the window through a short conversation and save the picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lang', choices=('ko', 'en'), default='ko')
    parser.add_argument('--params-file', metavar='FILE')
    parser.add_argument('-p', '--param', action='append', default=[], metavar='NAME=VALUE')
    parser.add_argument('-o', '--output', type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='kidscare-shot-') as data:
        overrides = {'data_dir': data, 'llm.temperature': '0', 'llm.max_tokens': '96',
                     'model.download': 'false', **settings.parse_overrides(args.param)}
        params = settings.load(settings.CHAT_NODE,
                               args.params_file or paths.default_params_file(), overrides)
        app = application()
        client = LocalClient(params, user='라이언' if args.lang == 'ko' else 'lion')
        window = ChatWindow(client, args.lang)
        window.resize(760, 600)
        window.show()
        client.start()
        try:
            wait_for(lambda: window.ready or window.state == 'failed', 300)
            if window.state == 'failed':
                raise SystemExit(f'screenshot: {window.connection.text()}')
            first, second, third = TURNS[args.lang]
            for text in (first, second):
                window.input.setText(text)
                window.send()
                wait_for(lambda: not window.thinking, 300)
            turns = window.transcript()
            if turns[-1].sources:
                window.history.anchorClicked.emit(QUrl(f'src:{len(turns) - 1}'))
            window.input.setText(third)
            window.send()
            wait_for(lambda: len(window.transcript()[-1].display()) >= 24 or not window.thinking,
                     300)
            app.processEvents()
            window.grab().save(str(args.output))
            print(f'wrote {args.output}')
        finally:
            window.close()
            client.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
