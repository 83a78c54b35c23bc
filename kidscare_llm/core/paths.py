"""Where things live: the package's shared files (config, persona) and the data dir."""

import json
import os
from pathlib import Path
import sys

from kidscare_llm.core.errors import ConfigError

PACKAGE = 'kidscare_llm'


def share_dir() -> Path:
    """Return the folder holding config/ (and launch/): ament index, source tree or prefix."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # no ROS, or the package is not in an ament index: look elsewhere
        pass
    source_tree = Path(__file__).resolve().parents[2]
    if (source_tree / 'config' / 'kidscare.yaml').is_file():
        return source_tree
    return Path(sys.prefix) / 'share' / PACKAGE


def default_params_file() -> Path:
    """Return the packaged config/kidscare.yaml."""
    return share_dir() / 'config' / 'kidscare.yaml'


def default_persona_dir() -> Path:
    """Return the packaged persona folder (the kids-care robot that looks after 라이언)."""
    return share_dir() / 'config' / 'persona'


def data_dir(configured: str = '') -> Path:
    """Return the data dir: the parameter, $KIDSCARE_DATA_DIR, or $XDG_DATA_HOME/kidscare_llm."""
    if configured:
        path = Path(configured).expanduser()
    elif os.environ.get('KIDSCARE_DATA_DIR'):
        path = Path(os.environ['KIDSCARE_DATA_DIR']).expanduser()
    else:
        xdg = os.environ.get('XDG_DATA_HOME') or str(Path.home() / '.local' / 'share')
        path = Path(xdg) / PACKAGE
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / '.writable'
        probe.write_bytes(b'')
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f'data dir {path} is not writable ({exc.strerror}): set data_dir or '
                          '$KIDSCARE_DATA_DIR to a writable folder') from None
    return path


def cache_dir() -> Path:
    """Return the cache dir for rebuildable files: $KIDSCARE_CACHE_DIR or ~/.cache/kidscare_llm.

    Nothing there is precious (the setup's built wheels, the trained safety classifier); a
    missing or unwritable folder only means rebuilding.
    """
    if os.environ.get('KIDSCARE_CACHE_DIR'):
        return Path(os.environ['KIDSCARE_CACHE_DIR']).expanduser()
    xdg = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(xdg) / PACKAGE


def append_line(path: Path, record: dict) -> None:
    """Append one JSON line and fsync it: a record an adult relies on survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a', encoding='utf-8') as out:
        out.write(json.dumps(record, ensure_ascii=False) + '\n')
        out.flush()
        os.fsync(out.fileno())


def replace_file(path: Path, text: str) -> None:
    """Write a file whole through a fsynced temporary beside it: never half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + '.tmp')
    with open(tmp, 'w', encoding='utf-8') as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
