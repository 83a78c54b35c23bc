"""Sentence chunks from a token stream, for early speech."""

from kidscare_llm.core.chat.chunker import PieceBatcher, SentenceChunker


def feed_all(pieces, **kw):
    chunker = SentenceChunker(**kw)
    out = []
    for piece in pieces:
        out += chunker.feed(piece)
    return out + chunker.flush()


def test_korean_sentences_come_out_as_they_complete():
    chunker = SentenceChunker()
    assert chunker.feed('안녕, 라이언! 오늘') == ['안녕, 라이언!']
    assert chunker.feed(' 공원에 갔구나. ') == ['오늘 공원에 갔구나.']
    assert chunker.feed('재미있었어?') == []
    assert chunker.flush() == ['재미있었어?']


def test_numbers_and_newlines():
    assert feed_all(['키가 1', '.2미터야', '\n\n', '좋아']) == ['키가 1.2미터야', '좋아']


def test_token_by_token_equals_whole_text():
    text = 'Hello there. How are you? I am fine!  Really…  ok'
    assert feed_all(list(text)) == feed_all([text]) == ['Hello there.', 'How are you?',
                                                        'I am fine!', 'Really…', 'ok']


def test_run_on_text_is_cut_near_max_chars():
    out = feed_all(['word ' * 100], max_chars=50)
    assert all(len(s) <= 50 for s in out)
    assert ' '.join(out).split() == ['word'] * 100


def test_piece_batcher_sends_the_first_piece_at_once_then_batches(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr('kidscare_llm.core.chat.chunker.time.monotonic', lambda: clock[0])
    sent = []
    batcher = PieceBatcher(sent.append, interval_s=0.05)
    batcher.add('Hel')
    assert sent == ['Hel']
    for piece in ('lo', ' wor'):
        clock[0] += 0.01
        batcher.add(piece)
    assert sent == ['Hel']
    clock[0] += 0.04
    batcher.add('ld')
    assert sent == ['Hel', 'lo world']
    batcher.add('!')
    batcher.flush()
    assert sent == ['Hel', 'lo world', '!'] and ''.join(sent) == 'Hello world!'
