"""Property-based tests (hypothesis) for the sentence chunker and the prompt token budget."""

import re

from hypothesis import given, settings, strategies as st

from kidscare_llm.core.chat.chunker import SentenceChunker
from kidscare_llm.core.chat.inputs import clean_user, clean_utterance
from kidscare_llm.core.chat.prompt import MESSAGE_OVERHEAD, plan_prompt
from kidscare_llm.core.chat.sessions import StoredMessage
from kidscare_llm.core.errors import InputError

# Korean, English, digits, sentence marks, spaces and line breaks, mixed freely.
TEXT = st.text(alphabet=st.sampled_from(list('가나다라 안녕 라이언abc XYZ 123 .!?~…。\n,"')),
               max_size=600)


def _squash(text: str) -> str:
    return re.sub(r'\s+', '', text)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=80),
       st.integers(min_value=20, max_value=200))
def test_chunker_loses_and_invents_nothing_however_the_stream_is_split(text, cuts, max_chars):
    chunker = SentenceChunker(max_chars=max_chars)
    sentences, pos, i = [], 0, 0
    while pos < len(text):
        step = cuts[i % len(cuts)]
        sentences += chunker.feed(text[pos:pos + step])
        pos, i = pos + step, i + 1
    sentences += chunker.flush()
    assert _squash(''.join(sentences)) == _squash(text)
    assert all(s and s == s.strip() for s in sentences)
    assert all(len(s) <= max_chars + 12 for s in sentences)  # cut within one piece of the limit


def _history(sizes):
    roles = ['user', 'assistant']
    return [StoredMessage(i + 1, roles[i % 2], 'x' * n) for i, n in enumerate(sizes)]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), min_size=0, max_size=40)
       .map(lambda xs: xs + [7] if len(xs) % 2 == 0 else xs + [0, 7]),
       st.integers(min_value=0, max_value=200), st.integers(min_value=50, max_value=4000))
def test_prompt_budget_keeps_persona_and_new_turn_and_drops_oldest_whole_turns(sizes, system,
                                                                               budget):
    history = _history(sizes)
    plan = plan_prompt('s' * system, history, len, budget)
    kept = history[plan.dropped:]
    assert plan.messages[0] == {'role': 'system', 'content': 's' * system}
    assert plan.messages[1:] == [{'role': m.role, 'content': m.content} for m in kept]
    assert plan.messages[-1]['content'] == history[-1].content  # the new turn is never dropped
    assert plan.window_start == kept[0].id
    assert plan.prompt_tokens == sum(len(m['content']) + MESSAGE_OVERHEAD
                                     for m in plan.messages)
    assert plan.prompt_tokens <= budget or plan.dropped == len(history) - 1
    if plan.dropped:
        assert kept[0].role == 'user' or len(kept) == 1  # whole turns: start at a user turn
    full = sum(len(m.content) + MESSAGE_OVERHEAD for m in history) + system + MESSAGE_OVERHEAD
    assert (plan.dropped == 0) == (full <= budget or len(history) == 1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_cleaned_utterances_and_user_ids_have_no_control_characters(text):
    for clean in (lambda t: clean_utterance(t, 1000), clean_user):
        try:
            out = clean(text)
        except InputError:
            continue
        assert out and out == out.strip()
        assert not re.search('[\x00-\x08\x0b-\x1f\x7f-\x9f]', out)
