"""Prompt and decode speed three ways in one run: bare llama.cpp, ChatEngine, chat node over DDS.

Each run sends a fresh session the persona and a different Korean text of `pp_tokens`
tokens (the model's tokenizer) and decodes max_tokens tokens, greedy; the persona prefix is
evaluated once beforehand on every side (the node's warm start), so each side evaluates the
same new tokens. Prompt speed: new tokens evaluated / time to first token; decode speed:
tokens after the first / time from the first to the last piece. The shape model never
writes a special token, so every side decodes exactly max_tokens tokens; the node's count
is the bare side's (greedy: the same text, which is checked). The sides take turns per run.
"""

from pathlib import Path
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional

import kit


class Bare:
    """llama-cpp-python's own chat completion, its evaluated tokens counted."""

    def __init__(self, model: Path, n_ctx: int, cpu: bool, threads: int):
        import llama_cpp

        self.llm = llama_cpp.Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads,
                                   n_threads_batch=threads,
                                   n_gpu_layers=0 if cpu else -1, verbose=False)
        self.evaluated = 0
        evaluate = self.llm.eval

        def counting(tokens):
            self.evaluated += len(tokens)
            return evaluate(tokens)
        self.llm.eval = counting

    def reply(self, system: str, text: str, max_tokens: int) -> Dict[str, Any]:
        """Stream one reply; return ttft_s, span_s, tokens, prompt_evaluated, text."""
        start, before = time.perf_counter(), self.evaluated
        stamps, parts, prompt = [], [], None
        for chunk in self.llm.create_chat_completion(
                messages=[{'role': 'system', 'content': system},
                          {'role': 'user', 'content': text}],
                stream=True, temperature=0.0, top_p=1.0, max_tokens=max_tokens):
            piece = chunk['choices'][0]['delta'].get('content')
            if piece:
                stamps.append(time.perf_counter())
                parts.append(piece)
                if prompt is None:
                    prompt = self.evaluated - before
        decoded = self.evaluated - before - (prompt or 0) + 1  # the last one is not run
        return {'ttft_s': stamps[0] - start, 'span_s': stamps[-1] - stamps[0],
                'tokens': decoded, 'prompt_evaluated': prompt, 'text': ''.join(parts)}


def engine_reply(engine, user: str, text: str) -> Dict[str, Any]:
    """One ChatEngine reply in a fresh session, timed like Bare.reply."""
    backend = engine.backend
    start, before, stamps = time.perf_counter(), backend.evaluated, []
    reply = engine.reply(user, text, on_piece=lambda p: stamps.append(time.perf_counter()))
    engine.checkpoint()  # what the node does while it waits: a switch only restores
    decoded = backend.evaluated - before - reply.prompt_evaluated + 1
    return {'ttft_s': stamps[0] - start, 'span_s': stamps[-1] - stamps[0], 'tokens': decoded,
            'prompt_evaluated': reply.prompt_evaluated, 'prompt_total': reply.prompt_tokens,
            'text': reply.text}


class Sides:
    """The three sides on one model, each opened on first use and closed on demand."""

    def __init__(self, model: Path, cpu: bool, n_ctx: int, threads: int, max_tokens: int):
        from kidscare_llm.core import settings
        from kidscare_llm.core.build import build_persona

        params = settings.load(settings.CHAT_NODE)
        self.system = build_persona(params).system_prompt(params['persona.inline_informations'])
        self.model, self.cpu, self.n_ctx, self.threads = model, cpu, n_ctx, threads
        self.max_tokens = max_tokens
        self.common = {'model.n_ctx': n_ctx, 'model.n_threads': threads,
                       'llm.max_tokens': max_tokens, 'safety.enabled': False}
        self.open: Dict[str, Any] = {}
        self.notes: Dict[str, Any] = {}

    def _get(self, side: str):
        if side not in self.open:
            kit.say(f'speed: opening the {side} side ({self.model.name})')
            if side == 'bare':
                bare = Bare(self.model, self.n_ctx, self.cpu, self.threads)
                bare.reply(self.system, '', 1)  # the persona, as the node's warm start does
                self.open[side] = bare
            elif side == 'engine':
                engine = kit.open_engine(self.model, self.common, self.cpu, None)
                engine.warm()
                self.open[side] = engine
            else:
                self.open[side], self.notes = start_node(self.model, self.cpu, self.common)
        return self.open[side]

    def run(self, side: str, i: int, text: str) -> Dict[str, Any]:
        """One reply of a side to text, in session speed_i."""
        handle = self._get(side)
        if side == 'bare':
            return handle.reply(self.system, text, self.max_tokens)
        if side == 'engine':
            return engine_reply(handle, f'speed_{i}', text)
        answer = handle[1].ask(text, user=f'speed_{i}')
        if answer.first_piece_s is None:
            raise RuntimeError(f'the node sent no stream ({answer.kind})')
        return {'ttft_s': answer.first_piece_s, 'span_s': answer.stream_s, 'text': answer.text}

    def close(self, side: str) -> None:
        """Release a side (its model, or its node process)."""
        start, handle = time.time(), self.open.pop(side, None)
        if side == 'bare' and handle is not None:
            handle.llm.close()
        elif side == 'engine' and handle is not None:
            handle.close()
        elif handle is not None:
            import harness
            handle[1].close()
            harness.stop(handle[0])
        if time.time() - start > 1:
            kit.say(f'speed: closing the {side} side took {time.time() - start:.1f} s')


def measure(model: Path, docs, runs: int, pp_tokens: int, max_tokens: int, cpu: bool,
            n_ctx: int, threads: int, node: bool, deadline: float,
            sequential: bool = False) -> Dict[str, Any]:
    """Run the sides and return the figures, with each side's ratio to bare.

    Interleaved, the order alternating per run; sequential: one side at a time, for a GPU
    that cannot hold the model three times.
    """
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
    texts = kit.long_texts(
        runs + 1, pp_tokens, lambda t: vocab.tokenize(t.encode('utf-8'), add_bos=False),
        lambda ids: vocab.detokenize(ids).decode('utf-8', 'ignore'), docs)
    names = ['bare', 'engine'] + (['node'] if node else [])
    sides = Sides(model, cpu, n_ctx, threads, max_tokens)
    rows: List[Dict[str, Dict[str, Any]]] = [{} for _ in texts]
    plan = [(side, i) for side in names for i in range(len(texts))] if sequential else \
        [(side, i) for i in range(len(texts))
         for side in (names if i % 2 else names[::-1])]  # alternate: load drifts cancel
    try:
        for side, i in plan:
            if time.time() > deadline and i > 1:
                continue
            row = rows[i]
            row[side] = sides.run(side, i, texts[i])
            if 'node' in row and 'bare' in row and 'engine' in row:  # greedy: bare's text,
                row['node'].update(tokens=row['bare']['tokens'],  # so its token count
                                   prompt_evaluated=row['engine']['prompt_evaluated'])
            if sequential and i == len(texts) - 1:
                sides.close(side)
            if sequential or len(row) == len(names):
                shown = {side: row[side]} if sequential else row
                kit.say(f'speed {"warm-up" if i == 0 else f"run {i}"}: ' + ' | '.join(
                    f'{k} ttft {r["ttft_s"] * 1000:.0f} ms, {rate(r):.1f} tok/s'
                    for k, r in shown.items()))
    finally:
        for side in list(sides.open):
            sides.close(side)
    done: Dict[str, List[Dict[str, Any]]] = {k: [] for k in ('bare', 'engine', 'node')}
    for row in rows[1:]:
        if len(row) < len(names):
            continue  # cut by the deadline
        for k, r in row.items():
            done[k].append(r)
    out = summary(done, sides.notes, pp_tokens, max_tokens)
    out['order'] = 'sequential' if sequential else 'interleaved'
    return out


def rate(r: Dict[str, Any]) -> float:
    """Decode tokens/s of one reply."""
    return (r['tokens'] - 1) / r['span_s'] if r['span_s'] > 0 else 0.0


def start_node(model: Path, cpu: bool, common: Dict[str, Any]):
    """Start the chat node over DDS on loopback and a client; ((proc, client), notes)."""
    import harness

    kit.say('speed: starting the chat node over DDS')
    env = harness.loopback_env()
    data = Path(tempfile.mkdtemp(prefix='gpu-kit-node-'))
    proc = harness.start_node('chat', kit.node_params(model, cpu, common), env, data,
                              timeout=600)
    client = harness.NodeClient(env)
    client.wait(120, stream=True)
    return (proc, client), {'node_log': str(proc.log)}


def summary(sides, notes, pp_tokens: int, max_tokens: int) -> Dict[str, Any]:
    """Each side's best run (and median), and its ratio to bare's best.

    Best, not median: on a shared machine other processes only ever slow a run down, so the
    fastest of a few runs is the closest to what the side itself costs.
    """
    med = statistics.median
    out: Dict[str, Any] = {'pp_tokens_asked': pp_tokens, 'decode_tokens': max_tokens,
                           'runs': len(sides['bare']), 'safety': False, 'rag': False,
                           'ratios': 'best run of each side over the best bare run'}
    for name, rows in sides.items():
        if not rows:
            continue
        pp = [r['prompt_evaluated'] / r['ttft_s'] for r in rows]
        decode = [rate(r) for r in rows]
        out[f'{name}_pp_tokens'] = int(med(r['prompt_evaluated'] for r in rows))
        out[f'{name}_ttft_ms'] = round(min(r['ttft_s'] for r in rows) * 1000, 1)
        out[f'{name}_ttft_ms_median'] = round(med(r['ttft_s'] for r in rows) * 1000, 1)
        out[f'{name}_pp_tps'] = round(max(pp), 1)
        out[f'{name}_pp_tps_median'] = round(med(pp), 1)
        out[f'{name}_decode_tps'] = round(max(decode), 2)
        out[f'{name}_decode_tps_median'] = round(med(decode), 2)
    for name in ('engine', 'node'):
        if sides[name]:
            out[f'{name}_pp_ratio'] = round(out[f'{name}_pp_tps'] / out['bare_pp_tps'], 4)
            out[f'{name}_decode_ratio'] = round(out[f'{name}_decode_tps']
                                                / out['bare_decode_tps'], 4)
            out[f'{name}_decode_ratio_median'] = round(
                out[f'{name}_decode_tps_median'] / out['bare_decode_tps_median'], 4)
    if sides['engine']:
        out['engine_prompt_tokens'] = int(med(r['prompt_total'] for r in sides['engine']))
    if sides['node']:
        out['node_same_text'] = all(b['text'].strip() == n['text'].strip()
                                    for b, n in zip(sides['bare'], sides['node']))
    out['engine_same_text'] = all(b['text'].strip() == e['text'].strip()
                                  for b, e in zip(sides['bare'], sides['engine']))
    out.update(notes)
    return out


def decode_only(model: Path, cpu: bool, threads: int, max_tokens: int,
                runs: int = 2) -> Optional[float]:
    """Bare decode tokens/s on a short prompt (the two-point bandwidth fit's second model)."""
    bare = Bare(model, 2048, cpu, threads)
    try:
        rates = [rate(bare.reply('You are a robot.', f'{i}: 안녕! 오늘 뭐 했어?', max_tokens))
                 for i in range(runs + 1)][1:]
    finally:
        bare.llm.close()
    return statistics.median(rates)
