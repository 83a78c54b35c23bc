"""Fast multi-turn on the real GGUF: prefix reuse, per-session KV snapshots, warm start."""

import pytest

from kidscare_llm.core import settings
from kidscare_llm.core.build import build_engine
from kidscare_llm.core.llm.llama_cpp import LlamaCppBackend
from kidscare_llm.core.llm.snapshots import KVSnapshot, SnapshotCache

pytestmark = pytest.mark.slow
# KV reuse is measured on the conversation alone: retrieval and memory put context into the
# newest user turn only, which the next turn re-evaluates (docs/memory.md).
FAST = {'llm.temperature': '0', 'llm.max_tokens': '24', 'model.download': 'false',
        'rag.enabled': 'false', 'memory.enabled': 'false'}


def engine_on(data_dir, backend, **overrides):
    params = settings.load('chat_node', overrides={**FAST, 'data_dir': str(data_dir),
                                                   **overrides})
    return build_engine(params, backend=backend)


@pytest.fixture
def fresh_backend(packaged_gguf):
    """A model of its own, so evaluated-token counts and snapshots belong to this test."""
    return lambda **kw: LlamaCppBackend(packaged_gguf, n_ctx=4096, **kw)


def test_warm_start_and_second_turn_evaluate_only_new_tokens(tmp_path, fresh_backend):
    backend = fresh_backend()
    engine = engine_on(tmp_path, backend)
    assert engine.warm() > 500 and backend.evaluated > 500  # the persona, once, at start-up
    first = engine.reply('lion', 'My dog is called Choco.')
    assert first.prompt_evaluated < 30 < first.prompt_tokens  # persona not paid again
    second = engine.reply('lion', 'What is my dog called?')
    new = backend.count_tokens('What is my dog called?')
    assert second.prompt_tokens > 500
    # the new turn, the end of the last reply and the template's role markers only
    assert second.prompt_evaluated <= new + 16


def test_switching_sessions_and_back_gives_the_same_continuation(tmp_path, fresh_backend):
    said = ['My dog is called Choco.', 'Tell me more about my dog.']
    alone = engine_on(tmp_path / 'alone', fresh_backend())
    uninterrupted = [alone.reply('a', text).text for text in said]

    backend = fresh_backend()
    shared = engine_on(tmp_path / 'shared', backend)
    assert shared.reply('a', said[0]).text == uninterrupted[0]
    shared.reply('b', 'I like the moon and the stars very much.')
    assert 'a_0' in backend.snapshots
    again = shared.reply('a', said[1])
    assert backend.last_switch == 'restored'
    assert again.text == uninterrupted[1]
    assert again.prompt_evaluated <= backend.count_tokens(said[1]) + 16
    assert backend.switch_ms < 500

    no_snapshots = fresh_backend(snapshot_mb=0)
    slow = engine_on(tmp_path / 'slow', no_snapshots)
    slow.reply('a', said[0])
    slow.reply('b', 'I like the moon and the stars very much.')
    assert slow.reply('a', said[1]).prompt_evaluated > again.prompt_evaluated + 10


def test_trimming_keeps_the_persona_and_drops_the_snapshot(tmp_path, fresh_backend):
    backend = fresh_backend()
    engine = engine_on(tmp_path, backend)
    engine.reply('a', 'Here is a long story about my toys and my garden and my dog.')
    engine.reply('b', 'Hello there.')
    assert 'a_0' in backend.snapshots
    engine.budget = engine._count(engine.system_prompt) + 60  # force a trim on a's next turn
    reply = engine.reply('a', 'And what do you think about it?')
    assert reply.dropped_messages > 0
    assert backend.last_switch == 'fresh'  # the stale snapshot was dropped, not restored
    assert reply.prompt_tokens <= engine.budget


def test_snapshot_cache_evicts_least_recently_used():
    cache = SnapshotCache(budget_bytes=250)
    for key in 'abc':
        cache.put(key, KVSnapshot([1, 2], bytearray(100)))
    assert 'a' not in cache and len(cache) == 2  # 300 bytes > 250: oldest went
    cache.get('b')  # b is now the most recently used
    cache.put('d', KVSnapshot([1], bytearray(100)))
    assert 'c' not in cache and 'b' in cache and 'd' in cache
    cache.put('huge', KVSnapshot([1], bytearray(1000)))
    assert 'huge' not in cache and cache.nbytes <= 250
    cache.drop('b')
    assert 'b' not in cache


def test_snapshots_spill_to_disk_and_come_back(tmp_path):
    cache = SnapshotCache(budget_bytes=250, folder=tmp_path / 'kv')
    for key in 'abc':
        cache.put(key, KVSnapshot([1, 2, 3], bytearray(key.encode() * 100)))
    assert len(cache) == 2 and 'a' in cache  # in RAM: b, c; on disk: a
    back = cache.get('a')
    assert back.tokens == [1, 2, 3] and bytes(back.state) == b'a' * 100
    assert 'b' in cache and len(list((tmp_path / 'kv').glob('*.kv'))) == 1  # b went to disk
    cache.drop('b')
    assert 'b' not in cache and not list((tmp_path / 'kv').glob('*.kv'))


def test_spilled_snapshot_restores_the_same_continuation(tmp_path, fresh_backend):
    said = ['My dog is called Choco.', 'Tell me more about my dog.']
    alone = engine_on(tmp_path / 'alone', fresh_backend())
    uninterrupted = [alone.reply('a', text).text for text in said]
    backend = fresh_backend(snapshot_mb=1, snapshot_dir=tmp_path / 'kv')  # RAM too small
    shared = engine_on(tmp_path / 'shared', backend)
    shared.reply('a', said[0])
    shared.reply('b', 'I like the moon and the stars very much.')
    assert list((tmp_path / 'kv').glob('*.kv'))  # a's KV went to disk
    again = shared.reply('a', said[1])
    assert backend.last_switch == 'restored' and again.text == uninterrupted[1]


def test_warm_start_is_restored_from_disk_after_a_restart(tmp_path, fresh_backend):
    first = fresh_backend(snapshot_dir=tmp_path / 'kv')
    assert engine_on(tmp_path / 'one', first).warm() > 500
    restarted = fresh_backend(snapshot_dir=tmp_path / 'kv')
    engine = engine_on(tmp_path / 'two', restarted)
    assert engine.warm() == 0 and restarted.evaluated == 0  # restored, nothing evaluated
    reply = engine.reply('lion', 'My dog is called Choco.')
    assert reply.text and reply.prompt_evaluated < 30 < reply.prompt_tokens


def test_summarize_folds_dropped_turns_into_the_session_memory(tmp_path, real_backend):
    from conftest import Recording
    spy = Recording(real_backend)
    engine = engine_on(tmp_path, spy, **{'memory.summarize': 'true'})
    engine.budget = engine._count(engine.system_prompt) + 260  # summary (<= 96) + a few turns
    said = ['My dog is called Choco and he is brown.', 'I like dinosaurs a lot.',
            'My sister is called Haneul.', 'We went to the park today.',
            'I had strawberries for lunch.'] * 4
    for text in said:
        if engine.reply('lion', text).dropped_messages:
            break
    reply = engine.reply('lion', 'What is my dog called?')
    summary = engine.store.summary(reply.session_id)
    assert summary  # the model wrote one
    system = spy.prompts[-1][0]['content']
    assert system.startswith(engine.system_prompt) and summary in system
    assert reply.prompt_tokens <= engine.budget
