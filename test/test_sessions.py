"""Session store: per-user sessions, reset keeps the old one, durable across kill -9."""

import subprocess
import sys
import textwrap

from kidscare_llm.core.chat.sessions import SessionStore


def test_users_get_their_own_sessions(tmp_path):
    store = SessionStore(tmp_path / 's.sqlite3')
    assert store.current('lion') == 'lion_0'
    assert store.current('mina') == 'mina_0'
    store.add('lion_0', 'user', '안녕')
    store.add('lion_0', 'assistant', '안녕, 라이언!')
    store.add('mina_0', 'user', '나는 미나야')
    assert [m.content for m in store.history('lion_0')] == ['안녕', '안녕, 라이언!']
    assert [m.content for m in store.history('mina_0')] == ['나는 미나야']


def test_reset_starts_a_new_session_and_keeps_the_old(tmp_path):
    store = SessionStore(tmp_path / 's.sqlite3')
    store.add(store.current('lion'), 'user', '첫 세션')
    assert store.reset('lion') == 'lion_1'
    assert store.current('lion') == 'lion_1'
    assert store.history('lion_1') == []
    assert [m.content for m in store.history('lion_0')] == ['첫 세션']
    assert store.sessions('lion') == ['lion_0', 'lion_1']


def test_window_start_hides_old_messages_but_keeps_them(tmp_path):
    store = SessionStore(tmp_path / 's.sqlite3')
    ids = [store.add('u_0', 'user', f'm{i}') for i in range(5)]
    store.current('u')
    store.set_window_start('u_0', ids[3])
    assert [m.content for m in store.history('u_0')] == ['m3', 'm4']
    assert len(store.history('u_0', all_messages=True)) == 5


def test_history_survives_kill_9_after_a_finished_turn(tmp_path):
    db = tmp_path / 's.sqlite3'
    code = textwrap.dedent(f'''
        import os, signal
        from kidscare_llm.core.chat.sessions import SessionStore
        s = SessionStore({str(db)!r})
        sid = s.current('lion')
        s.add(sid, 'user', '공룡 좋아해')
        s.add(sid, 'assistant', '나도 공룡 좋아!')
        os.kill(os.getpid(), signal.SIGKILL)
    ''')
    proc = subprocess.run([sys.executable, '-c', code])
    assert proc.returncode == -9
    store = SessionStore(db)
    assert store.integrity_ok()
    history = store.history(store.current('lion'))
    assert [m.content for m in history] == ['공룡 좋아해', '나도 공룡 좋아!']
