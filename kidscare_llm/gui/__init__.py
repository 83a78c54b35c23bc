"""`kidscare-llm gui`: the Qt chat window, a client of the running chat node (or --local).

Qt (PySide6) is imported only inside this package, and only when the window is opened.
"""

import sys
from typing import Any, Mapping, Optional

from kidscare_llm.gui.texts import LANGS

__all__ = ['LANGS', 'main']


def main(params: Mapping[str, Any], local: bool = False, transport: Optional[str] = None,
         lang: str = 'ko', node_name: str = 'chat_node', wait_s: float = 10.0) -> int:
    """Open the chat window; 1 with one clear line when Qt or a display is missing."""
    try:
        from kidscare_llm.gui import window
        from kidscare_llm.gui.client import NodeClient
        from kidscare_llm.gui.local import LocalClient
    except ImportError as exc:
        print(f'kidscare-llm gui: cannot load Qt ({exc}): install PySide6-Essentials from '
              "requirements.txt and the Qt runtime libraries (scripts/setup.sh's apt list)",
              file=sys.stderr)
        return 1
    problem = window.display_problem()
    if problem:
        print(f'kidscare-llm gui: {problem}', file=sys.stderr)
        return 1
    if local:
        client = LocalClient(params)
    else:
        client = NodeClient(params['chat.default_user'], params['chat.max_utterance_chars'],
                            transport, node_name, wait_s)
    return window.run(client, lang, node_name, wait_s)
