"""Chat node overhead: decode tokens/s and time to first token, node over DDS vs bare llama.cpp.

Both sides run the same GGUF with the same persona prompt, greedy, in the same run and
interleaved (retrieval off: bench/retrieval.py measures it): the bare side calls
llama-cpp-python's create_chat_completion in this process; the node side publishes on
/user_utterance to a `kidscare-llm node` process and times the text arriving on
/robot_reply_stream (first piece at once, then batched; the decoded token count is the bare
side's: greedy decoding gives both the same text, which is checked). Each prompt starts a
fresh session, so both sides see the same messages. A reply without streamed pieces (a busy
or safety line, a lost stream, no reply in time) is counted (replies_without_stream, and
reply_kinds) and not timed. Last line: one JSON object.

  .venv/bin/python bench/engine.py [--model FILE.gguf] [--runs 6] [--max-tokens 128]
  BENCH_NODE_ARGS='memory.warm_start=false ...' adds node parameters (to compare settings).
"""

import argparse
from collections import Counter
import os
from pathlib import Path
import statistics
import tempfile
import time

import harness

from kidscare_llm.core import paths, settings
from kidscare_llm.core.chat.persona import load_persona
from kidscare_llm.core.llm.models import packaged_chat_model

EXTRA = settings.parse_overrides(os.environ.get('BENCH_NODE_ARGS', '').split())
PROMPTS = [
    'Tell me a long story about a friendly dinosaur.',
    'Explain how rain is made, step by step.',
    'Describe a fun day at the beach with my family.',
    'What are ten animals that live in the forest?',
    'Tell me about the planets in our solar system.',
    'How do you make a sandwich? Explain every step.',
    'Tell me a story about a brave little robot.',
    'Describe your favourite season and why.',
]


def timed(stream, start):
    """Consume a stream of pieces; return (ttft_s, decode_tps, pieces, text)."""
    stamps, parts = [], []
    for piece in stream:
        stamps.append(time.perf_counter())
        parts.append(piece)
    if not stamps:
        return None, None, 0, ''
    decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return stamps[0] - start, decode, len(stamps), ''.join(parts)


def bare_pieces(llm, messages, max_tokens):
    """Yield content pieces from the bare llama-cpp-python call."""
    for chunk in llm.create_chat_completion(messages=messages, stream=True, temperature=0.0,
                                            top_p=1.0, max_tokens=max_tokens):
        piece = chunk['choices'][0]['delta'].get('content')
        if piece:
            yield piece


def main():
    """Run both sides interleaved and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', help='GGUF file (default: the packaged SmolLM2-135M)')
    ap.add_argument('--runs', type=int, default=6, help='measured prompts (after one warm-up)')
    ap.add_argument('--max-tokens', type=int, default=128)
    a = ap.parse_args()
    model = Path(a.model) if a.model else packaged_chat_model()
    inline = settings.defaults(settings.CHAT_NODE)['persona.inline_informations']
    system = load_persona(paths.default_persona_dir()).system_prompt(inline)
    threads = os.cpu_count()

    env = harness.loopback_env()
    data = Path(tempfile.mkdtemp(prefix='bench-engine-'))
    overrides = {'model.path': model, 'llm.temperature': 0, 'llm.top_p': 1.0,
                 'llm.max_tokens': a.max_tokens, 'model.n_threads': threads,
                 'rag.enabled': False, **EXTRA}  # retrieval: bench/retrieval.py
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=4096, n_threads=threads, verbose=False)
    node = harness.start_node('chat', overrides, env, data, timeout=300)
    client = None
    rows, kinds, unstreamed = [], Counter(), 0
    try:
        client = harness.NodeClient(env, 'bench_engine')
        client.wait(120, stream=True)
        prompts = (PROMPTS * (a.runs // len(PROMPTS) + 2))[:a.runs + 1]
        for i, text in enumerate(prompts):
            messages = [{'role': 'system', 'content': system}, {'role': 'user', 'content': text}]
            start = time.perf_counter()
            bare = timed(bare_pieces(llm, messages, a.max_tokens), start)
            answer = client.ask(text, user=f'bench_{i}')
            label = 'warm-up' if i == 0 else f'run {i}'
            if bare[0] is None:
                print(f'{label:8s} the bare side wrote nothing; not timed', flush=True)
                continue
            if i:
                kinds[answer.kind] += 1
            if not answer.streamed:  # a busy or safety line, a timeout, or the stream lost
                unstreamed += bool(i)
                print(f'{label:8s} bare ttft {bare[0] * 1000:7.1f} ms | node: {answer.kind} '
                      f'without streamed pieces ({answer.text!r:.60}); not timed', flush=True)
                continue
            # The node batches pieces; the text is the same, so it decoded as many tokens.
            span = answer.stream_s
            via_node = (answer.first_piece_s, (bare[2] - 1) / span if span > 0 else 0.0,
                        len(answer.pieces), answer.text)
            same = bare[3].strip() == answer.text
            print(f'{label:8s} bare ttft {bare[0] * 1000:7.1f} ms {bare[1]:6.1f} tok/s '
                  f'({bare[2]} pieces) | node ttft {via_node[0] * 1000:7.1f} ms '
                  f'{via_node[1]:6.1f} tok/s ({via_node[2]} messages) | same text: {same}',
                  flush=True)
            if i:
                rows.append((bare, via_node, same))
    finally:
        if client is not None:
            client.close()
        harness.stop(node)

    figures = {'model': model.name, 'runs': len(rows), 'threads': threads,
               'replies_without_stream': unstreamed, 'reply_kinds': dict(kinds)}
    if not rows:
        print(f'no timed run: {unstreamed} of {a.runs} replies came without streamed pieces')
        harness.emit(figures)
        return 1
    med = statistics.median
    bare_tps, node_tps = med(r[0][1] for r in rows), med(r[1][1] for r in rows)
    bare_ttft, node_ttft = med(r[0][0] for r in rows), med(r[1][0] for r in rows)
    figures.update({
        'bare_decode_tps': round(bare_tps, 2), 'node_decode_tps': round(node_tps, 2),
        'node_decode_ratio': round(node_tps / bare_tps, 4),
        'bare_ttft_ms': round(bare_ttft * 1000, 1), 'node_ttft_ms': round(node_ttft * 1000, 1),
        'ttft_overhead_ms': round((node_ttft - bare_ttft) * 1000, 1),
        'same_output': all(r[2] for r in rows),
    })
    print(f'node/bare decode throughput: {figures["node_decode_ratio"]:.3f}x; '
          f'first-token overhead: {figures["ttft_overhead_ms"]:+.1f} ms'
          + (f'; {unstreamed} replies without streamed pieces not timed' if unstreamed else ''))
    harness.emit(figures)
    return 0


if __name__ == '__main__':
    harness.run(main)
