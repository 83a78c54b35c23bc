"""Prompt assembly: persona first, whole turns dropped oldest-first to fit, with hysteresis."""

import pytest

from kidscare_llm.core.chat.prompt import MESSAGE_OVERHEAD, plan_prompt
from kidscare_llm.core.chat.sessions import StoredMessage


def count(text):
    """Count one token per character: easy to reason about in tests."""
    return len(text)


def turns(n, size=10):
    msgs = []
    for i in range(n):
        msgs.append(StoredMessage(2 * i + 1, 'user', 'u' * size))
        msgs.append(StoredMessage(2 * i + 2, 'assistant', 'a' * size))
    return msgs


def test_everything_fits_nothing_dropped():
    history = turns(2) + [StoredMessage(99, 'user', 'new')]
    plan = plan_prompt('SYSTEM', history, count, budget=1000)
    assert plan.dropped == 0 and plan.window_start == 1
    assert [m['role'] for m in plan.messages] == ['system', 'user', 'assistant', 'user',
                                                  'assistant', 'user']
    assert plan.messages[0]['content'] == 'SYSTEM' and plan.messages[-1]['content'] == 'new'
    assert plan.prompt_tokens == 6 + 4 * 10 + 3 + 6 * MESSAGE_OVERHEAD


def test_oldest_whole_turns_go_first_and_system_stays():
    history = turns(10) + [StoredMessage(99, 'user', 'new')]
    per_msg = 10 + MESSAGE_OVERHEAD
    budget = 6 + 3 + 2 * MESSAGE_OVERHEAD + 8 * per_msg  # room for 4 of the 10 turns
    plan = plan_prompt('SYSTEM', history, count, budget)
    assert plan.prompt_tokens <= budget
    assert plan.messages[0] == {'role': 'system', 'content': 'SYSTEM'}
    assert plan.messages[1]['role'] == 'user'  # a kept window starts with a whole turn
    assert plan.messages[-1]['content'] == 'new'
    kept = len(plan.messages) - 2
    assert kept % 2 == 0 and kept < 8  # dropped below the budget: the low-water mark
    assert plan.window_start == history[plan.dropped].id


def test_window_stays_put_for_the_next_turns():
    """After a trim, the next turns fit without moving the window (prefix stays cached)."""
    history = turns(10) + [StoredMessage(99, 'user', 'new')]
    per_msg = 10 + MESSAGE_OVERHEAD
    budget = 6 + 3 + 2 * MESSAGE_OVERHEAD + 8 * per_msg
    plan = plan_prompt('SYSTEM', history, count, budget)
    kept = [m for m in history if m.id >= plan.window_start]
    following = kept + [StoredMessage(100, 'assistant', 'a' * 10),
                        StoredMessage(101, 'user', 'next')]
    assert plan_prompt('SYSTEM', following, count, budget).dropped == 0


def test_the_new_message_is_never_dropped():
    history = turns(3) + [StoredMessage(99, 'user', 'x' * 500)]
    plan = plan_prompt('SYSTEM', history, count, budget=100)
    assert plan.messages[-1]['content'] == 'x' * 500
    assert len(plan.messages) == 2


def test_empty_history_is_a_programming_error():
    with pytest.raises(ValueError):
        plan_prompt('S', [], count, 100)
