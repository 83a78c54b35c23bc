"""kidscare_llm: an on-device, Korean-first, multi-turn RAG chatbot for service robots.

The robot's brain without ROS, from a script or a notebook::

    import kidscare_llm
    engine = kidscare_llm.open_engine(**{'rag.enabled': False})
    print(engine.reply('라이언', '안녕! 오늘 공원에 갔어').text)
    engine.close()
"""

from pathlib import Path
from typing import Any, Sequence, Union

__version__ = '0.1.0'


def open_engine(params_file: Union[None, str, Path, Sequence[Path]] = None, **overrides: Any):
    """Return a ready ChatEngine built from the chat node's parameters.

    params_file: a ROS 2 parameter file (or several, later ones win); overrides: parameter
    values by their dotted names, e.g. ``**{'llm.temperature': 0.0}``. Unknown names and
    values out of range raise ConfigError, as the node would. Close the engine when done.
    """
    from kidscare_llm.core import settings
    from kidscare_llm.core.build import build_engine

    files = [Path(params_file)] if isinstance(params_file, (str, Path)) else params_file
    return build_engine(settings.load(settings.CHAT_NODE, files, overrides))
