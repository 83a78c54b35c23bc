"""Shared fixtures: loopback-only DDS on a random domain, a temporary data dir, the model."""

import os
from pathlib import Path
import random
import socket
import subprocess
import sys
import time

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Before any DDS participant exists: loopback only, and a domain no other run is using.
os.environ['CYCLONEDDS_URI'] = f'file://{HERE / "cyclonedds-loopback.xml"}'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(100, 200)))

BIN = Path(sys.executable).parent


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """Point KIDSCARE_DATA_DIR at a fresh folder."""
    path = tmp_path / 'data'
    monkeypatch.setenv('KIDSCARE_DATA_DIR', str(path))
    return path


@pytest.fixture(scope='session')
def packaged_gguf():
    """Return the packaged SmolLM2-135M GGUF (the real model every real test uses)."""
    from kidscare_llm.core.llm.models import check_gguf, packaged_chat_model
    return check_gguf(packaged_chat_model())


@pytest.fixture(scope='session')
def real_backend(packaged_gguf):
    """Load the packaged model once per test run through llama.cpp."""
    from kidscare_llm.core.llm.llama_cpp import LlamaCppBackend
    return LlamaCppBackend(packaged_gguf, n_ctx=4096)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def talk(checker, user: str, turns, start: float = 1e9) -> list:
    """Feed turns to a checker's conversation stage; return [(turn number, alert)]."""
    out = []
    for n, text in enumerate(turns, 1):
        verdict = checker.check_input(text)
        out += [(n, a) for a in checker.conversation.observe(user, text, now=start + n,
                                                             verdict=verdict)]
    return out


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until something listens on 127.0.0.1:port, failing early if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f'server exited with {proc.returncode}')
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f'nothing listened on port {port} within {timeout} s')


class Recording:
    """Pass-through to the real backend that keeps every prompt it was asked to complete."""

    def __init__(self, backend):
        self.backend = backend
        self.prompts = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def stream(self, messages, sampling, cancel=None, session=None):
        self.prompts.append(list(messages))
        yield from self.backend.stream(messages, sampling, cancel, session)
