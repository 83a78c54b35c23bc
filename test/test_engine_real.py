"""The chat engine on the real packaged GGUF through llama.cpp, with a real SQLite store."""

import os
import subprocess
import threading

import pytest

from conftest import BIN, Recording
from kidscare_llm.core import settings
from kidscare_llm.core.build import build_engine
from kidscare_llm.core.chat.persona import packaged_persona
from kidscare_llm.core.errors import EmptyUtterance

pytestmark = pytest.mark.slow

FAST = {'llm.temperature': '0', 'llm.max_tokens': '24', 'model.download': 'false',
        'rag.enabled': 'false', 'memory.enabled': 'false'}


def evaluated_text(backend):
    """Detokenize what llama.cpp actually evaluated for the last reply."""
    llm = backend._llm
    return llm.detokenize(list(llm.input_ids[:llm.n_tokens])).decode('utf-8', 'replace')


@pytest.fixture
def engine_and_spy(data_dir, real_backend):
    spy = Recording(real_backend)
    return build_engine(settings.load('chat_node', overrides=FAST), backend=spy), spy


def test_three_turns_the_third_prompt_holds_the_first_two(engine_and_spy):
    engine, spy = engine_and_spy
    said = ['My dog is called Choco.', 'I like dinosaurs.', 'What is my dog called?']
    replies = [engine.reply('lion', text) for text in said]
    assert all(r.text and r.kind == 'answer' for r in replies)
    third = spy.prompts[2]
    assert third[0]['role'] == 'system' and '토리' in third[0]['content']
    assert [m['content'].strip() for m in third[1:]] == [said[0], replies[0].text, said[1],
                                                         replies[1].text, said[2]]
    evaluated = evaluated_text(spy.backend)  # what the model really read
    for text in (said[0], said[1], said[2]):
        assert text in evaluated


def test_streaming_callbacks_match_the_reply(engine_and_spy):
    engine, _ = engine_and_spy
    pieces, sentences = [], []
    reply = engine.reply('lion', 'Tell me about the sun.', on_piece=pieces.append,
                         on_sentence=sentences.append)
    assert len(pieces) == reply.pieces > 1
    assert ''.join(pieces).strip() == reply.text
    assert sentences == reply.sentences and ' '.join(sentences).split() == reply.text.split()


def test_reset_starts_fresh(engine_and_spy):
    engine, spy = engine_and_spy
    engine.reply('lion', 'My dog is called Choco.')
    assert engine.reset('lion') == 'lion_1'
    engine.reply('lion', 'What is my dog called?')
    assert [m['role'] for m in spy.prompts[-1]] == ['system', 'user']
    assert 'Choco' not in str(spy.prompts[-1])


def test_cancel_stops_at_the_next_token_and_keeps_the_partial(engine_and_spy):
    engine, _ = engine_and_spy
    cancel = threading.Event()
    pieces = []

    def on_piece(piece):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    reply = engine.reply('lion', 'Count from one to twenty.', on_piece=on_piece, cancel=cancel)
    assert reply.interrupted and reply.pieces == 3
    last = engine.store.history(reply.session_id)[-1]
    assert last.role == 'assistant' and last.interrupted and last.content.strip() == reply.text


def test_bad_utterances(engine_and_spy):
    engine, spy = engine_and_spy
    with pytest.raises(EmptyUtterance):
        engine.reply('lion', '  \n ')
    spoken = []
    reply = engine.reply('lion', '가' * 5000, on_sentence=spoken.append)
    too_long = packaged_persona().line('too_long')
    assert reply.kind == 'refused' and reply.text == too_long == spoken[0]
    assert spy.prompts == []  # neither reached the model


def test_long_conversations_never_overflow_n_ctx(data_dir, real_backend, caplog):
    params = settings.load('chat_node', overrides={**FAST, 'model.n_ctx': '4096',
                                                   'llm.max_tokens': '8'})
    engine = build_engine(params, backend=Recording(real_backend))
    engine.budget = engine._count(engine.system_prompt) + 150  # room for a few turns only
    with caplog.at_level('INFO'):
        for i in range(8):
            reply = engine.reply('lion', f'Here is fact number {i} about my favourite toys.')
            assert reply.prompt_tokens <= engine.budget
    assert any('dropped the' in r.message for r in caplog.records)
    assert engine.backend.prompts[-1][0]['content'] == engine.system_prompt


def test_history_survives_a_new_process(data_dir, real_backend):
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(data_dir))
    cmd = [str(BIN / 'kidscare-llm'), 'chat', '--user', 'lion', '-m', 'My dog is called Choco.']
    for name, value in FAST.items():
        cmd += ['-p', f'{name}={value}']
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'robot> ' in proc.stdout
    spy = Recording(real_backend)
    engine = build_engine(settings.load('chat_node', overrides=FAST), backend=spy)
    engine.reply('lion', 'What is my dog called?')
    assert spy.prompts[0][1] == {'role': 'user', 'content': 'My dog is called Choco.'}
    assert spy.prompts[0][2]['role'] == 'assistant'


def test_live_parameters_change_the_next_reply_all_or_nothing(engine_and_spy):
    """apply_live (ros2 param set under rclpy): validated first, then the next reply uses it."""
    from kidscare_llm.core.build import apply_live
    from kidscare_llm.core.errors import ConfigError

    engine, spy = engine_and_spy
    apply_live(engine, {'llm.max_tokens': 3, 'rag.top_k': 5})
    assert engine.options.sampling.max_tokens == 3 and engine.options.top_k == 5
    assert engine.budget == engine.backend.n_ctx - 3
    reply = engine.reply('lion', 'Tell me a long story about a brave dog.')
    assert reply.pieces <= 3
    before = engine.options
    with pytest.raises(ConfigError, match='persona takes'):  # no room left for the persona
        apply_live(engine, {'llm.max_tokens': engine.backend.n_ctx - 10,
                            'llm.temperature': 1.5})
    assert engine.options is before  # nothing of the refused set was applied


def test_a_remembered_fact_rides_in_the_last_user_message_and_citations(
        data_dir, real_backend):
    spy = Recording(real_backend)
    engine = build_engine(settings.load('chat_node', overrides=dict(
        FAST, **{'memory.enabled': 'true'})), backend=spy)
    try:
        engine.reply('lion', '나 땅콩 먹으면 안 돼. 알레르기 있어')
        engine.reset('lion')  # another session: the history no longer holds it
        reply = engine.reply('lion', '내가 못 먹는 음식 기억나?')
        last = spy.prompts[-1][-1]
        assert last['role'] == 'user' and '땅콩' in last['content']
        assert all('땅콩' not in m['content'] for m in spy.prompts[-1][:-1])
        cited = [s for s in reply.sources if s['source'] == 'memory']
        assert cited and '땅콩' in cited[0]['text'] and cited[0]['kind'] == 'health'
        assert '땅콩' in evaluated_text(spy.backend)
        assert [i.kind for i in engine.memory.list('lion')] == ['health']
    finally:
        engine.close()
