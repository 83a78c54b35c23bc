"""The OpenAI-compatible backend against a real server: llama-cpp-python's own, on loopback."""

import subprocess
import sys
import threading

import pytest

from conftest import free_port, wait_for_port
from kidscare_llm.core import settings
from kidscare_llm.core.build import build_engine
from kidscare_llm.core.chat.persona import packaged_persona
from kidscare_llm.core.errors import LLMError
from kidscare_llm.core.llm.base import Sampling
from kidscare_llm.core.llm.openai import OpenAIBackend

pytestmark = pytest.mark.slow
GREEDY = Sampling(temperature=0.0, top_p=1.0, max_tokens=24)


@pytest.fixture(scope='module')
def server(packaged_gguf, tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp('server') / 'server.log').open('wb')
    proc = subprocess.Popen([sys.executable, '-m', 'llama_cpp.server', '--model',
                             str(packaged_gguf), '--host', '127.0.0.1', '--port', str(port),
                             '--n_ctx', '4096'], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        yield f'http://127.0.0.1:{port}/v1'
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_streams_pieces(server):
    backend = OpenAIBackend(server, 'smollm2')
    pieces = list(backend.stream([{'role': 'user', 'content': 'Name three colours.'}], GREEDY))
    assert len(pieces) > 3 and ''.join(pieces).strip()


def test_cancel_stops_the_stream_and_the_server_keeps_serving(server):
    backend = OpenAIBackend(server, 'smollm2')
    cancel = threading.Event()
    got = []
    for piece in backend.stream([{'role': 'user', 'content': 'Count to fifty.'}],
                                Sampling(0.0, 1.0, 200), cancel):
        got.append(piece)
        if len(got) == 2:
            cancel.set()
    assert len(got) == 2
    assert list(backend.stream([{'role': 'user', 'content': 'Hi'}], GREEDY))


def test_engine_multi_turn_over_the_server(server, data_dir):
    params = settings.load('chat_node', overrides={
        'llm.backend': 'openai', 'llm.base_url': server, 'llm.model': 'smollm2',
        'llm.temperature': '0', 'llm.max_tokens': '24'})
    engine = build_engine(params)
    first = engine.reply('lion', 'My cat is called Nabi.')
    second = engine.reply('lion', 'What is my cat called?')
    assert first.kind == second.kind == 'answer' and first.text and second.text
    history = engine.store.history(second.session_id)
    assert [m.content for m in history[:2]] == ['My cat is called Nabi.', first.text]


def test_unreachable_server_becomes_a_spoken_apology(data_dir):
    params = settings.load('chat_node', overrides={
        'llm.backend': 'openai', 'llm.base_url': f'http://127.0.0.1:{free_port()}/v1',
        'llm.timeout_s': '2'})
    engine = build_engine(params)
    reply = engine.reply('lion', '안녕')
    assert reply.kind == 'error' and reply.text == packaged_persona().line('error')
    with pytest.raises(LLMError, match='cannot reach'):
        list(engine.backend.stream([{'role': 'user', 'content': 'x'}], GREEDY))


def test_http_errors_are_reported(server):
    backend = OpenAIBackend(server.replace('/v1', '/nope'), 'smollm2')
    with pytest.raises(LLMError, match='HTTP 404'):
        list(backend.stream([{'role': 'user', 'content': 'x'}], GREEDY))


def test_bad_base_url():
    with pytest.raises(LLMError, match='http'):
        OpenAIBackend('ftp://x')
