"""Chat node overhead: decode tokens/s and time to first token, node over DDS vs bare llama.cpp.

Both sides run the same GGUF with the same persona prompt, greedy, in the same run and
interleaved (retrieval off: bench/retrieval.py measures it): the bare side calls
llama-cpp-python's create_chat_completion in this process; the node side publishes on
/user_utterance to a `kidscare-llm node` process and times the text arriving on
/robot_reply_stream (first piece at once, then batched; the decoded token count is the bare
side's: greedy decoding gives both the same text, which is checked). Each prompt starts a
fresh session, so both sides see the same messages. Last line: one JSON object.

  .venv/bin/python bench/engine.py [--model FILE.gguf] [--runs 6] [--max-tokens 128]
  BENCH_NODE_ARGS='memory.warm_start=false ...' adds node parameters (to compare settings).
"""

import argparse
import json
import os
from pathlib import Path
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('CYCLONEDDS_URI', f'file://{ROOT / "test" / "cyclonedds-loopback.xml"}')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(100, 200)))

from kidscare_llm.core import paths, settings  # noqa: E402
from kidscare_llm.core.llm.models import packaged_model  # noqa: E402
from kidscare_llm.core.chat.persona import load_persona  # noqa: E402
from kidscare_llm.transport import MSG_STRING  # noqa: E402
from kidscare_llm.transport.dds import DdsTransport  # noqa: E402

EXTRA = [a for x in os.environ.get('BENCH_NODE_ARGS', '').split() for a in ('-p', x)]
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


class NodeClient:
    """Talks to the chat node over DDS and yields the streamed pieces of one reply."""

    def __init__(self):
        self.t = DdsTransport('bench_engine')
        self.pieces: queue.Queue = queue.Queue()
        self.replies: queue.Queue = queue.Queue()
        self.t.subscribe('robot_reply_stream', MSG_STRING,
                         lambda s: self.pieces.put((time.perf_counter(), s)))
        self.t.subscribe('robot_reply', MSG_STRING, self.replies.put)
        self.say = self.t.publisher('user_utterance', MSG_STRING)
        self.session = self.t.publisher('/chat_node/session', MSG_STRING)

    def wait(self, timeout):
        """Wait for the node's endpoints to match ours."""
        for topic in ('user_utterance', '/chat_node/session'):
            if not self.t.wait_for_subscribers(topic, MSG_STRING, timeout):
                return False
        return all(self.t.wait_for_publishers(topic, MSG_STRING, timeout)
                   for topic in ('robot_reply_stream', 'robot_reply'))

    def ask(self, user, text, timeout=300.0):
        """Switch to a fresh user, publish text, return timings like timed()."""
        self.session(user)
        time.sleep(0.3)  # the switch must land before the utterance (separate topics)
        start = time.perf_counter()
        self.say(text)
        reply = self.replies.get(timeout=timeout)
        got = []
        while not self.pieces.empty():
            got.append(self.pieces.get_nowait())
        return got[0][0] - start, got[-1][0] - got[0][0], len(got), reply


def main():
    """Run both sides interleaved and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', help='GGUF file (default: the packaged SmolLM2-135M)')
    ap.add_argument('--runs', type=int, default=6, help='measured prompts (after one warm-up)')
    ap.add_argument('--max-tokens', type=int, default=128)
    a = ap.parse_args()
    model = Path(a.model) if a.model else packaged_model()
    inline = settings.defaults(settings.CHAT_NODE)['persona.inline_informations']
    system = load_persona(paths.default_persona_dir()).system_prompt(inline)
    threads = os.cpu_count()

    data = tempfile.mkdtemp(prefix='bench-engine-')
    env = dict(os.environ, KIDSCARE_DATA_DIR=data)
    node_cmd = [str(Path(sys.executable).parent / 'kidscare-llm'), 'node', '--transport', 'dds',
                '-p', f'model.path={model}', '-p', 'llm.temperature=0', '-p', 'llm.top_p=1.0',
                '-p', f'llm.max_tokens={a.max_tokens}', '-p', f'model.n_threads={threads}',
                '-p', 'rag.enabled=false', *EXTRA]  # retrieval: bench/retrieval.py
    log = open(Path(data) / 'node.log', 'wb')
    node = subprocess.Popen(node_cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import llama_cpp
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=4096, n_threads=threads,
                              verbose=False)
        client = NodeClient()
        if not client.wait(120):
            raise SystemExit(f'chat node not discovered; see {Path(data) / "node.log"}')
        rows = []
        prompts = (PROMPTS * (a.runs // len(PROMPTS) + 2))[:a.runs + 1]
        for i, text in enumerate(prompts):
            messages = [{'role': 'system', 'content': system}, {'role': 'user', 'content': text}]
            start = time.perf_counter()
            bare = timed(bare_pieces(llm, messages, a.max_tokens), start)
            ttft, span, messages, reply = client.ask(f'bench_{i}', text)
            # The node batches pieces; the text is the same, so it decoded as many tokens.
            via_node = (ttft, (bare[2] - 1) / span if span > 0 else 0.0, messages, reply)
            same = bare[3].strip() == reply
            label = 'warm-up' if i == 0 else f'run {i}'
            print(f'{label:8s} bare ttft {bare[0] * 1000:7.1f} ms {bare[1]:6.1f} tok/s '
                  f'({bare[2]} pieces) | node ttft {via_node[0] * 1000:7.1f} ms '
                  f'{via_node[1]:6.1f} tok/s ({via_node[2]} messages) | same text: {same}',
                  flush=True)
            if i:
                rows.append((bare, via_node, same))
    finally:
        node.terminate()
        node.wait(timeout=15)
        log.close()

    med = statistics.median
    bare_tps, node_tps = med(r[0][1] for r in rows), med(r[1][1] for r in rows)
    bare_ttft, node_ttft = med(r[0][0] for r in rows), med(r[1][0] for r in rows)
    figures = {
        'model': model.name, 'runs': len(rows), 'threads': threads,
        'bare_decode_tps': round(bare_tps, 2), 'node_decode_tps': round(node_tps, 2),
        'node_decode_ratio': round(node_tps / bare_tps, 4),
        'bare_ttft_ms': round(bare_ttft * 1000, 1), 'node_ttft_ms': round(node_ttft * 1000, 1),
        'ttft_overhead_ms': round((node_ttft - bare_ttft) * 1000, 1),
        'same_output': all(r[2] for r in rows),
    }
    print(f'node/bare decode throughput: {figures["node_decode_ratio"]:.3f}x; '
          f'first-token overhead: {figures["ttft_overhead_ms"]:+.1f} ms')
    print(json.dumps(figures))


if __name__ == '__main__':
    main()
