"""The optional judge stage: asked only about unsure lines, its answer read leniently.

Logic with a scripted model (what a capable model would answer), then the packaged model
through llama.cpp end to end (it is too small to judge well; the wiring and timing are real).
"""

import pytest

from kidscare_llm.core import settings
from kidscare_llm.core.build import build_safety
from kidscare_llm.core.llm.base import Backend
from kidscare_llm.core.safety import SafetyChecker
from kidscare_llm.core.safety.judge import SafetyJudge

UNSURE_RISKY = '엄마 아빠 없을 때 누가 자꾸 전화해'  # classifier P about 0.8: below 0.9
# ordinary requests the classifier is unsure of (P from 0.3 to 0.9; which one depends on the
# training lines, so the test takes the first that is, and says so if none is)
UNSURE_BENIGN = ('유튜브 더 봐도 돼?', '게임 한 판만 더 해도 돼?', '숙제 다 하고 놀아도 돼?')
PLAIN = '나 오늘 급식 맛있었어'  # about 0.04: never asked


class Says(Backend):
    """Answers every question with one fixed text and keeps the questions."""

    kind = 'scripted'

    def __init__(self, answer):
        self.answer, self.asked = answer, []

    def count_tokens(self, text):
        return len(text) // 2 + 1

    def stream(self, messages, sampling, cancel=None, session=None):
        self.asked.append(messages[-1]['content'])
        yield self.answer


@pytest.fixture(scope='module')
def checker():
    return SafetyChecker.load().warm_up()


def unsure(checker):
    """Return the first UNSURE_BENIGN line whose P(not benign) lies where the judge is asked."""
    clf = checker.classifier()
    for text in UNSURE_BENIGN:
        spaced, _, morphs, _, _ = checker.analyse(text)
        if 0.3 <= clf.risky(spaced, morphs, None)[1] < checker.policy.classifier.threshold:
            return text
    raise AssertionError(f'no line of {UNSURE_BENIGN} is unsure now: add one that is')


def judged(checker, answer):
    model = Says(answer)
    checker.judge = SafetyJudge(model, checker.policy.priority, low=0.3)
    return model


def test_the_judge_is_asked_only_about_unsure_lines_and_can_flag_them(checker):
    try:
        model = judged(checker, 'unsafe\nS2')
        verdict = checker.check_input(UNSURE_RISKY)
        assert verdict.flagged and verdict.stage == 'judge' and verdict.category == 'abuse'
        assert verdict.alert  # abuse alerts whichever stage found it
        assert len(model.asked) == 1 and UNSURE_RISKY in model.asked[0]
        assert 'S2: abuse' in model.asked[0]
        assert not checker.check_input(PLAIN).flagged and len(model.asked) == 1
        assert checker.check_input('나 죽고 싶어').stage == 'input'  # the lexicon decides
        assert len(model.asked) == 1 and len(checker.judge.latencies_ms) == 1
        model = judged(checker, 'safe')
        assert not checker.check_input(unsure(checker)).flagged and len(model.asked) == 1
    finally:
        checker.judge = None


def test_answers_are_read_leniently_and_anything_unclear_is_safe():
    judge = SafetyJudge(Says(''), ['self_harm', 'abuse', 'personal_info'])
    assert judge.read('unsafe: personal_info') == 'personal_info'
    assert judge.read('Unsafe, S1') == 'self_harm'
    assert judge.read('**unsafe** personal info') == 'personal_info'
    assert judge.read('unsafe') == ''  # no category named: the classifier's label is used
    for answer in ('safe', '', 'I think this is fine', 'unsure'):
        assert judge.read(answer) is None


def test_a_failing_model_lets_the_line_pass_and_says_so(checker, caplog):
    class Broken(Says):
        def stream(self, messages, sampling, cancel=None, session=None):
            raise RuntimeError('server down')
            yield ''

    checker.judge = SafetyJudge(Broken(''), checker.policy.priority)
    try:
        assert not checker.check_input(UNSURE_RISKY).flagged
        assert 'safety judge failed (RuntimeError: server down)' in caplog.text
    finally:
        checker.judge = None


@pytest.mark.slow
def test_the_packaged_model_answers_the_judge_through_llama_cpp(real_backend):
    params = settings.load('chat_node', overrides={'safety.judge': 'true'})
    safety = build_safety(params, backend=real_backend)
    assert safety.judge is not None and safety.judge.backend is real_backend
    verdict = safety.check_input(UNSURE_RISKY)
    assert len(safety.judge.latencies_ms) == 1 and safety.judge.latencies_ms[0] > 0
    assert verdict.flagged == (verdict.stage == 'judge')  # whatever the small model said
    off = build_safety(settings.load('chat_node'), backend=real_backend)
    assert off.judge is None  # off by default
