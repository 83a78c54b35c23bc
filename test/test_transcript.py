"""The chat window's conversations without Qt: escaping, sources, users apart, streaming."""

import html
import re
import subprocess
import sys

from kidscare_llm.gui.texts import TEXTS
from kidscare_llm.gui.transcript import source_label, Transcripts, Turn

T = TEXTS['ko']
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)> \'hi\''


def plain(markup):
    """Return the text a browser shows for markup (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r'<[^>]+>', '', markup.replace('<br>', '\n')))


def test_everything_a_child_typed_is_escaped():
    tr = Transcripts(T, '<b>mina</b>')
    tr.add('<b>mina</b>', Turn('user', HOSTILE + '\n두 줄'))
    tr.add('<b>mina</b>', Turn('robot', HOSTILE, sources=[
        {'source': '/kb/<evil>.txt', 'title': '<script>t</script>', 'position': 2}]))
    tr.toggle_sources('<b>mina</b>', 1)
    markup = tr.html('<b>mina</b>')
    for raw in ('<script>', '<img', '<b>mina</b>', '<evil>', 'onerror=alert(1)>'):
        assert raw not in markup
    assert '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' in markup
    assert '&lt;b&gt;mina&lt;/b&gt;:' in markup and '&#x27;hi&#x27;' in markup
    assert HOSTILE + '\n두 줄' in plain(markup)  # shown exactly as typed, line break kept
    assert '[1] <script>t</script> — <evil>.txt#2' in plain(markup)


def test_turn_html_by_role():
    tr = Transcripts(TEXTS['en'], 'lion')
    heard = tr.turn_html('lion', 0, Turn('user', 'hello', heard=True))
    assert plain(heard) == 'lion (voice):\xa0hello'
    assert plain(tr.turn_html('lion', 0, Turn('system', 'chat reset'))) == 'ChatBot:\xa0chat reset'
    cut = tr.turn_html('lion', 0, Turn('robot', 'Once upon', interrupted=True))
    assert plain(cut) == 'ChatBot:\xa0Once upon (interrupted)'


def test_source_labels():
    assert source_label({'source': '/data/kb/animals.md', 'position': 3, 'score': 0.614}) == \
        'animals.md#3 (score 0.61)'
    assert source_label({'source': 'persona:informations.txt', 'position': 0,
                         'title': '라이언'}) == '라이언 — persona:informations.txt#0'
    assert source_label({'source': 'memory:lion', 'score': 'high'}) == 'memory:lion#?'
    assert source_label({}) == '?#?'


def test_sources_fold_and_unfold_and_stay_hidden_while_streaming():
    tr = Transcripts(T, 'default')
    sources = [{'source': 'persona:informations.txt', 'position': 0},
               {'source': '/kb/food.md', 'position': 4, 'score': 0.5}]
    turn = Turn('robot', open=True, pieces='김밥', sources=sources)
    tr.add('default', turn)
    assert '출처' not in plain(tr.html('default'))  # not until the reply is complete
    turn.close()
    assert '출처 2개 ▸' in plain(tr.html('default')) and 'food.md' not in tr.html('default')
    assert '<a href="src:0">' in tr.html('default')
    assert tr.toggle_sources('default', 0)
    shown = plain(tr.html('default'))
    assert '출처 2개 ▾' in shown and '[1] persona:informations.txt#0' in shown
    assert '[2] food.md#4 (score 0.50)' in shown
    assert tr.toggle_sources('default', 0) and 'food.md' not in tr.html('default')
    assert not tr.toggle_sources('default', 5) and not tr.toggle_sources('nobody', 0)


def test_users_are_kept_apart_and_reset_alone():
    tr = Transcripts(T, 'default')
    tr.add('default', Turn('user', '나는 라이언이야.'))
    tr.add('mina', Turn('user', '나는 미나야.'))
    assert '미나' not in plain(tr.html('default')) and '라이언' not in plain(tr.html('mina'))
    assert plain(tr.html('mina')).startswith('mina:')
    copy = tr.copy('default')
    copy.append(Turn('user', 'not kept'))
    assert len(tr.copy('default')) == 1 and tr.copy('nobody') == [] and 'nobody' not in tr.turns
    tr.reset('mina')
    assert [(t.role, t.text) for t in tr.copy('mina')] == [('system', '초기화 됨')]
    assert tr.copy('default')[0].text == '나는 라이언이야.'
    assert tr.of('new') == [] and 'new' in tr.turns


def test_streamed_text_is_appended_until_it_must_be_redrawn():
    tr = Transcripts(T, 'default')
    tr.add('default', Turn('user', '이야기 해줘'))
    turn = Turn('robot', open=True)
    tr.add('default', turn)
    tr.html('default')  # drawn with the empty open turn
    turn.sentences.append('옛날에.')
    assert tr.tail('default', turn) is None  # nothing shown yet: draw the turn
    tr.html('default')
    assert turn.shown == '옛날에.'
    turn.sentences.append('호랑이가 살았어.')
    assert tr.tail('default', turn) == ' 호랑이가 살았어.'
    assert tr.tail('default', turn) == ''  # nothing new since
    turn.pieces = '옛날 옛적에'  # token pieces replace the sentences: not an extension
    assert tr.tail('default', turn) is None
    tr.html('default')
    turn.pieces += ' 호랑이'
    assert tr.tail('default', turn) == ' 호랑이' and turn.shown == '옛날 옛적에 호랑이'
    tr.add('default', Turn('user', '잠깐!', heard=True))  # no longer the last turn
    turn.pieces += '가'
    assert tr.tail('default', turn) is None
    assert tr.tail('mina', turn) is None


def test_closing_a_streamed_turn_keeps_what_was_said():
    turn = Turn('robot', open=True, sentences=['하나.', '둘.'])
    assert turn.display() == '하나. 둘.'
    turn.close(interrupted=True)
    assert (turn.text, turn.open, turn.interrupted, turn.display()) == ('하나. 둘.', False, True,
                                                                        '하나. 둘.')
    final = Turn('robot', text='끝.', open=True, pieces='끝')
    assert final.display() == '끝'
    final.close()
    assert final.text == '끝.' and not final.interrupted


def test_the_model_needs_no_qt():
    code = ('import sys, kidscare_llm.gui.transcript; '
            'sys.exit(any(m.startswith("PySide6") for m in sys.modules))')
    assert subprocess.run([sys.executable, '-c', code], timeout=60).returncode == 0
