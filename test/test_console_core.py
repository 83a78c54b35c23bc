"""The caregiver's core (core/caregiver/): rules, talk time, export, delete, retention, commands.

Real session databases and alert files under a temporary data dir; the engine around them is
a small stand-in whose backend records which KV snapshots it was told to forget.
"""

import datetime as dt
import json
import time
from types import SimpleNamespace

import pytest

from kidscare_llm.core.caregiver.commands import CaregiverDesk, make_request
from kidscare_llm.core.caregiver.rules import in_span, parse_span, RuleBook, RuleError
from kidscare_llm.core.caregiver.usage import per_day, talk_seconds
from kidscare_llm.core.chat.alerts import AckLog, AlertLog, read_alerts
from kidscare_llm.core.chat.persona import packaged_persona
from kidscare_llm.core.chat.reply import Reply
from kidscare_llm.core.chat.sessions import SessionStore


class Backend:
    """Records forgotten sessions (the KV snapshots a real backend drops)."""

    n_ctx = 4096

    def __init__(self):
        self.forgotten = []

    def count_tokens(self, text):
        return len(text) // 2 + 1

    def forget(self, session):
        self.forgotten.append(session)

    def describe(self):
        return 'stand-in'


class Engine:
    """The parts of ChatEngine the desk uses; reply() answers 'answer' and stores both turns."""

    def __init__(self, data):
        self.store = SessionStore(data / 'sessions.sqlite3')
        self.backend = Backend()
        self.persona = packaged_persona()
        self.options = SimpleNamespace(max_utterance_chars=1000, inline_informations=False,
                                       sampling=SimpleNamespace(max_tokens=256))
        self.knowledge = None
        self.alerts = AlertLog(data / 'alerts.jsonl')
        self.replies = 0

    def reply(self, user, text, on_piece=None, on_sentence=None, cancel=None):
        self.replies += 1
        session = self.store.current(user)
        self.store.add(session, 'user', text)
        self.store.add(session, 'assistant', 'answer')
        return Reply('answer', session, sources=[{'source': 'a.txt', 'position': 0}])

    def describe(self):
        return 'stand-in'


def alert(engine, user, text, when=None):
    verdict = SimpleNamespace(category='crisis', action='alert', reason='test')
    engine.alerts.raise_alert(user, engine.store.current(user), text, verdict)
    if when is not None:  # rewrite the time of the last line
        lines = engine.alerts.path.read_text(encoding='utf-8').splitlines()
        last = json.loads(lines[-1])
        last['time'] = time.strftime('%Y-%m-%dT%H:%M:%S%z', time.localtime(when))
        lines[-1] = json.dumps(last, ensure_ascii=False)
        engine.alerts.path.write_text('\n'.join(lines) + '\n', encoding='utf-8')


@pytest.fixture
def engine(tmp_path):
    return Engine(tmp_path)


def desk_at(engine, hour, minute=0, quiet='', limit=0):
    when = dt.datetime(2025, 3, 3, hour, minute).timestamp()
    return CaregiverDesk(engine, quiet, limit, 90, clock=lambda: when)


def ask(desk, action, **args):
    return desk.handle(json.dumps(make_request(action, **args)))


def test_quiet_hour_spans_cross_midnight():
    span = parse_span('21:00-07:00')
    assert span == (21 * 60, 7 * 60)
    assert in_span(span, 22 * 60) and in_span(span, 6 * 60 + 59)
    assert not in_span(span, 7 * 60) and not in_span(span, 12 * 60)
    assert in_span(parse_span('13:00-14:30'), 14 * 60) and not in_span(None, 0)
    for bad in ('9pm-7am', '25:00-07:00', '07:00-07:00'):
        with pytest.raises(RuleError):
            parse_span(bad)


def test_rule_book_child_over_all_over_default_and_saved(tmp_path):
    path = tmp_path / 'rules.json'
    book = RuleBook(path, '22:00-06:00', 0)
    assert book.effective('mina').quiet == '22:00-06:00'
    book.set('*', '21:00-07:00', 60)
    book.set('mina', None, 30)
    assert book.effective('mina') == book.effective('mina').__class__('21:00-07:00', 30, True,
                                                                      True, False)
    assert book.effective('lion').limit_min == 60
    again = RuleBook(path, '', 0)  # a restart reads the saved book
    assert again.effective('mina').limit_min == 30 and again.effective('x').quiet == '21:00-07:00'
    assert again.remove('mina') and again.effective('mina').limit_min == 60
    with pytest.raises(RuleError):
        book.set('mina', 'bedtime', None)
    path.write_text('not json', encoding='utf-8')
    with pytest.raises(RuleError, match='rules.json'):
        RuleBook(path, '', 0)


def test_rule_switches_inherit_are_saved_and_an_old_book_still_reads(tmp_path):
    path = tmp_path / 'rules.json'
    book = RuleBook(path, '', 0)
    assert book.remembers('mina') and book.speaks('mina') and not book.strict('mina')
    book.set('*', None, None, strict=True)
    book.set('mina', None, None, voice=False, strict=False)
    book.set_alert('dangerous', True)
    again = RuleBook(path, '', 0)
    assert not again.speaks('mina') and again.speaks('lion')
    assert again.strict('lion') and not again.strict('mina')  # mina's own rule wins
    assert again.alerts_also('dangerous') and not again.alerts_also('adult')
    assert again.to_dict()['alerts'] == {'dangerous': True}
    path.write_text(json.dumps({'mina': {'quiet': '21:00-07:00', 'limit_min': None,
                                         'memory': False}}), encoding='utf-8')
    old = RuleBook(path, '', 0)  # a book saved before the switches (version 1)
    assert old.effective('mina').quiet == '21:00-07:00' and not old.remembers('mina')
    assert old.speaks('mina') and old.to_dict()['alerts'] == {}


def test_voice_off_sends_no_sentence_to_speak_but_the_reply_is_there(engine):
    desk = desk_at(engine, 12)
    assert ask(desk, 'rules.set', user='mina', voice=False)['ok']
    said = []
    assert desk.reply('mina', '안녕', on_sentence=said.append).text == 'answer'
    night = desk_at(engine, 23, quiet='21:00-07:00')
    reply = night.reply('mina', '안녕', on_sentence=said.append)
    assert reply.kind == 'rules' and reply.text and said == []  # text only, nothing spoken
    night.reply('lion', '안녕', on_sentence=said.append)
    assert said and '잘 시간' in said[0]  # lion's voice is on


def test_alert_choices_follow_the_policy_and_unknown_ones_are_refused(engine):
    from kidscare_llm.core.safety import SafetyChecker

    engine.safety = SafetyChecker.load()
    desk = desk_at(engine, 12)
    cats = {c['category']: c for c in ask(desk, 'rules.get')['result']['categories']}
    assert cats['self_harm'] == {'category': 'self_harm', 'fixed': True, 'alert': True}
    assert cats['grooming']['fixed'] and not cats['dangerous']['alert']
    refused = ask(desk, 'rules.alert', category='self_harm', on=False)
    assert not refused['ok'] and 'always alerts' in refused['error']
    assert 'unknown safety category' in ask(desk, 'rules.alert', category='x', on=True)['error']
    assert ask(desk, 'rules.alert', category='dangerous', on=True)['ok']
    assert engine.alert_also('dangerous') and not engine.alert_also('adult')


def test_talk_time_counts_stretches_not_silences():
    assert talk_seconds([]) == 0
    assert talk_seconds([100.0]) == 15.0
    assert talk_seconds([0.0, 60.0, 120.0]) == 135.0  # two minutes of talk, the last heard
    assert talk_seconds([0.0, 60.0, 3600.0]) == 60.0 + 15.0 + 15.0  # an hour apart: two
    today = dt.date(2025, 3, 3)
    noon = dt.datetime(2025, 3, 3, 12).timestamp()
    days = per_day([noon, noon + 120, noon - 86400], 14, today)
    assert len(days) == 14 and days[-1][0] == today and days[-1][1] == pytest.approx(2.25)
    assert days[-2][1] == pytest.approx(0.25) and days[0][1] == 0


def test_quiet_hours_refuse_kindly_and_outside_them_the_robot_answers(engine):
    night = desk_at(engine, 22, quiet='21:00-07:00')
    said = []
    reply = night.reply('mina', '안녕 토리', on_sentence=said.append)
    assert reply.kind == 'rules' and said == [reply.text] and '잘 시간' in reply.text
    assert engine.replies == 0  # nothing generated
    rows = engine.store.transcript('mina_0')
    assert [r[1:3] for r in rows] == [('user', '안녕 토리'), ('assistant', reply.text)]
    assert rows[1][5] == 'rules'
    day = desk_at(engine, 10, quiet='21:00-07:00')
    assert day.reply('mina', '안녕').kind == 'answer' and engine.replies == 1
    assert json.loads(engine.store.transcript('mina_0')[-1][6])[0]['source'] == 'a.txt'


def test_daily_limit_counts_todays_talk(engine):
    desk = desk_at(engine, 12)
    assert ask(desk, 'rules.set', user='mina', limit_min=1)['ok']
    session = engine.store.current('mina')
    now = desk.clock()
    for offset in (-100, -40):  # 60 s of talk + 15 s: over one minute
        engine.store._db.execute('INSERT INTO messages (session_id, role, content, created) '
                                 "VALUES (?, 'user', 'x', ?)", (session, now + offset))
    assert desk.reply('mina', '더 놀자').kind == 'rules'
    assert desk.reply('lion', '안녕').kind == 'answer'  # the rule is mina's only


def test_delete_child_removes_every_row_alert_snapshot_and_rule(engine, tmp_path):
    desk = desk_at(engine, 12)
    for user in ('mina', 'lion'):
        desk.reply(user, f'{user} 안녕')
        alert(engine, user, f'{user} risky')
    engine.store.reset('mina')
    desk.reply('mina', 'again')
    ask(desk, 'rules.set', user='mina', quiet='20:00-08:00')
    done = ask(desk, 'child.delete', user='mina')
    assert done['ok'] and done['result'] == {'user': 'mina', 'sessions': 2, 'messages': 4,
                                             'alerts': 1, 'memory': 0}
    db = engine.store._db
    assert db.execute("SELECT COUNT(*) FROM sessions WHERE user = 'mina'").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM messages WHERE session_id LIKE 'mina%'"
                      ).fetchone()[0] == 0
    assert db.execute('SELECT COUNT(*) FROM reply_notes n LEFT JOIN messages m ON '
                      'm.id = n.message_id WHERE m.id IS NULL').fetchone()[0] == 0
    assert [a['user'] for a in read_alerts(engine.alerts.path)] == ['lion']
    assert sorted(engine.backend.forgotten) == ['mina_0', 'mina_1']
    assert 'mina' not in json.loads((tmp_path / 'caregiver' / 'rules.json').read_text())
    assert 'mina' not in (tmp_path / 'alerts.jsonl').read_text(encoding='utf-8')
    assert engine.store.users() == ['lion']


def test_export_holds_exactly_that_childs_data(engine):
    desk = desk_at(engine, 12)
    desk.reply('mina', '나는 미나야')
    desk.reply('lion', '나는 라이언이야')
    alert(engine, 'mina', 'mina risky')
    alert(engine, 'lion', 'lion risky')
    out = ask(desk, 'child.export', user='mina')['result']
    text = json.dumps(out, ensure_ascii=False)
    assert '미나' in text and 'mina risky' in text
    assert '라이언이야' not in text and 'lion risky' not in text
    assert [m['content'] for m in out['sessions'][0]['messages']] == ['나는 미나야', 'answer']
    assert out['sessions'][0]['messages'][1]['sources'][0]['source'] == 'a.txt'


def test_retention_deletes_only_what_is_old(engine):
    desk = desk_at(engine, 12)
    session = engine.store.current('mina')
    now = desk.clock()
    for age_days, text in ((100, 'old'), (10, 'recent')):
        when = now - age_days * 86400
        engine.store._db.execute('INSERT INTO messages (session_id, role, content, created) '
                                 "VALUES (?, 'user', ?, ?)", (session, text, when))
        alert(engine, 'mina', text, when=when)
    done = desk.maintain()
    assert done == {'messages': 1, 'alerts': 1, 'days': 90}
    assert [r[2] for r in engine.store.transcript(session)] == ['recent']
    assert [a['utterance'] for a in read_alerts(engine.alerts.path)] == ['recent']
    assert desk.maintain() is None  # once a day
    assert ask(desk, 'retention.run', days=5)['result']['messages'] == 1


def test_commands_answer_errors_and_never_raise(engine):
    desk = desk_at(engine, 12)
    assert desk.handle('not json')['ok'] is False
    bad = ask(desk, 'format.disk')
    assert bad['ok'] is False and 'unknown action' in bad['error']
    off = ask(desk, 'memory.list', user='mina')
    assert off['ok'] is False and 'memory is off' in off['error']
    assert ask(desk, 'rules.set', user='mina', quiet='soon')['ok'] is False
    request = make_request('ping')
    assert desk.handle(json.dumps(request))['id'] == request['id']


def test_memory_actions_reach_the_engines_memory(engine):
    items = {'mina': [SimpleNamespace(id='m1', to_dict=lambda: {'id': 'm1', 'text': '강아지'})]}
    engine.memory = SimpleNamespace(
        list=lambda user, history=False: items.get(user, []),
        forget=lambda user, item_id: bool(items.get(user)) and items[user].pop() is not None,
        clear=lambda user: len(items.pop(user, [])))
    desk = desk_at(engine, 12)
    assert ask(desk, 'memory.list', user='mina')['result'] == [{'id': 'm1', 'text': '강아지'}]
    assert ask(desk, 'memory.forget', user='mina', item_id='m1')['result'] is True
    assert ask(desk, 'memory.list', user='mina')['result'] == []


def test_acknowledgements_survive_and_forget_a_child(tmp_path):
    acks = AckLog(tmp_path / 'console' / 'acks.jsonl')
    acks.acknowledge({'id': 'a1', 'user': 'mina'}, 'parent', '전화했어요')
    acks.acknowledge({'id': 'a2', 'user': 'lion'}, 'parent')
    again = AckLog(tmp_path / 'console' / 'acks.jsonl')
    assert again.all()['a1']['note'] == '전화했어요'
    assert again.forget_user('mina') == 1 and set(again.all()) == {'a2'}
