"""llama.cpp threads on a shared CPU: decode tok/s and first-token latency beside busy neighbours.

A robot's computer is never idle: navigation and perception keep cores busy. llama.cpp's
worker threads meet at every layer, so one preempted worker stalls the others. This bench
runs the packaged model (or --model) bare through llama-cpp-python with each candidate
setting of (n_threads, n_threads_batch), quiet and beside one and two CPU-bound neighbour
processes (`while True: pass`), every candidate measured in the same run, interleaved, in a
shuffled order per round. Each measurement: a fresh prompt (the persona and a question,
about 1,000 tokens on SmolLM2) timed to its first token (prompt evaluation: n_threads_batch),
then a fixed number of greedy tokens timed one by one (decode: n_threads). Medians over the
rounds; the last line is one JSON object.

  .venv/bin/python bench/threads.py [--rounds 3] [--tokens 64] [--neighbours 0,1,2]
      [--model FILE.gguf] [--engine] [--budget-s 1200]

--engine also times replies through kidscare_llm.open_engine (retrieval and safety off) for
each candidate's model.n_threads / model.n_threads_batch. A run that exceeds --budget-s stops
measuring, says so, and still prints the JSON line (with "timed_out": true).
"""

import argparse
import ctypes
import json
import os
from pathlib import Path
import random
import signal
import statistics
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kidscare_llm.core import paths  # noqa: E402
from kidscare_llm.core.chat.persona import load_persona  # noqa: E402
from kidscare_llm.core.llm import llama_cpp as backend  # noqa: E402
from kidscare_llm.core.llm.models import packaged_chat_model  # noqa: E402

QUESTIONS = [
    'Tell me a long story about a friendly dinosaur.',
    'Explain how rain is made, step by step.',
    'What are ten animals that live in the forest?',
    'Tell me a story about a brave little robot.',
]
BUSY = 'while True: pass'


class OutOfTime(Exception):
    """The run's time budget is spent."""


def candidates():
    """Return [(label, n_threads, n_threads_batch)], one row per distinct setting."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') \
        else os.cpu_count() or 1
    cores = backend.usable_cores()
    rows = [('default', *backend.resolve_threads(0, 0)),
            ('all logical (old default)', logical, logical),
            ('physical', cores, cores),
            ('physical-1', max(1, cores - 1), max(1, cores - 1)),
            ('split physical-1/physical', max(1, cores - 1), cores),
            ('1', 1, 1)]
    merged = {}
    for label, n, nb in rows:
        merged.setdefault((n, nb), []).append(label)
    return [(' = '.join(labels), n, nb) for (n, nb), labels in merged.items()]


def _die_with_parent():
    """Ask Linux to kill this neighbour when the bench dies (even by kill -9)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def neighbours(count):
    """Start count CPU-bound processes; return them (the caller stops them)."""
    procs = [subprocess.Popen([sys.executable, '-c', BUSY], preexec_fn=_die_with_parent)
             for _ in range(count)]
    time.sleep(0.5 if procs else 0.0)  # let the scheduler see them
    return procs


def stop(procs):
    """Stop the neighbour processes."""
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


class Bare:
    """One llama-cpp-python model; threads switched per measurement with llama_set_n_threads.

    Warm (the node's default, memory.warm_start): the persona's KV state is restored before
    each measurement, so the first token waits for the question's tokens only. Cold: the
    whole prompt (persona and question) is evaluated.
    """

    def __init__(self, model: Path, system: str, cold: bool = False):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.lib = llama_cpp
        self.llm = llama_cpp.Llama(model_path=str(model), n_ctx=4096, verbose=False)
        eos = self.llm._model.token_get_text(self.llm.token_eos())
        bos = self.llm._model.token_get_text(self.llm.token_bos())
        self.formatter = Jinja2ChatFormatter(self.llm.metadata['tokenizer.chat_template'],
                                             eos, bos)
        self.system = system
        self.persona = None
        if not cold:
            a, b = self.prompt(QUESTIONS[0]), self.prompt(QUESTIONS[1])
            common = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
            self.llm.reset()
            self.llm.eval(a[:common])
            self.persona = self.llm.save_state()

    def prompt(self, question: str):
        """Return the token ids of a fresh chat prompt: persona and one question."""
        text = self.formatter(messages=[{'role': 'system', 'content': self.system},
                                        {'role': 'user', 'content': question}]).prompt
        return self.llm.tokenize(text.encode('utf-8'), add_bos=False, special=True)

    def measure(self, n_threads, n_threads_batch, question, tokens, deadline):
        """Return (first-token latency s, decode tok/s) of one reply."""
        llm = self.llm
        self.lib.llama_set_n_threads(llm._ctx.ctx, n_threads, n_threads_batch)
        if self.persona is not None:
            llm.load_state(self.persona)  # generate() reuses this prefix
        else:
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        ids = self.prompt(question)
        start = time.perf_counter()
        stamps = []
        # greedy; EOS is ignored so every candidate decodes the same number of tokens
        for _ in llm.generate(ids, top_k=1, temp=0.0, reset=True):
            stamps.append(time.perf_counter())
            if len(stamps) > tokens or stamps[-1] > deadline:
                break
        if stamps[-1] > deadline:
            raise OutOfTime
        return stamps[0] - start, (len(stamps) - 1) / (stamps[-1] - stamps[0])


class ThroughEngine:
    """Replies through open_engine (retrieval and safety off), one engine per n_threads.

    The engine has one thread count for decoding and prompts (model.n_threads), so only the
    candidates with n_threads == n_threads_batch run here.
    """

    def __init__(self, model: Path, settings, tokens: int, cold: bool = False):
        import kidscare_llm

        self.engines = {}
        for _, n, nb in settings:
            if n != nb:
                continue
            engine = kidscare_llm.open_engine(**{
                'model.path': str(model), 'model.n_threads': n, 'rag.enabled': False,
                'safety.enabled': False, 'memory.snapshot_mb': 0, 'llm.temperature': 0.0,
                'llm.max_tokens': tokens, 'memory.warm_start': not cold})
            if not cold:
                engine.warm()
            self.engines[n] = engine
        self.turn = 0

    def accepts(self, n_threads, n_threads_batch):
        """Return True for the settings the engine can run."""
        return n_threads == n_threads_batch

    def measure(self, n_threads, n_threads_batch, question, tokens, deadline):
        """Return (first piece s, pieces/s) of one reply in a fresh session."""
        engine = self.engines[n_threads]
        self.turn += 1
        stamps = []
        start = time.perf_counter()
        engine.reply(f'bench{self.turn}', question,
                     on_piece=lambda _p: stamps.append(time.perf_counter()))
        if time.perf_counter() > deadline:
            raise OutOfTime
        if len(stamps) < 2:
            return (stamps[0] - start if stamps else float('nan')), float('nan')
        return stamps[0] - start, (len(stamps) - 1) / (stamps[-1] - stamps[0])

    def close(self):
        """Close every engine."""
        for engine in self.engines.values():
            engine.close()


def run(side, settings, loads, rounds, tokens, deadline, name, results):
    """Measure every (load, candidate) rounds times into results {load: {label: [...]}}."""
    accepts = getattr(side, 'accepts', lambda n, nb: True)
    settings = [row for row in settings if accepts(row[1], row[2])]
    for load in loads:
        results[load] = {label: [] for label, _, _ in settings}
    for r in range(rounds):
        for load in loads:
            procs = neighbours(load)
            try:
                order = random.sample(settings, len(settings))
                for label, n, nb in order:
                    question = QUESTIONS[r % len(QUESTIONS)]
                    ttft, tps = side.measure(n, nb, question, tokens, deadline)
                    results[load][label].append((ttft, tps))
                    print(f'{name} round {r + 1} neighbours {load} [{label}] ({n}/{nb}): '
                          f'first token {ttft * 1000:7.0f} ms, decode {tps:6.1f} tok/s',
                          flush=True)
            finally:
                stop(procs)


def summarise(results, settings):
    """Return per load: each candidate's medians and the default's ratios to the best."""
    out = {}
    default = next(label for label, _, _ in settings if 'default' in label.split(' = '))
    for load, rows in results.items():
        rows = {k: v for k, v in rows.items() if v}
        if not rows:
            continue
        table = {label: {'first_token_ms': round(statistics.median(t for t, _ in v) * 1000),
                         'decode_tps': round(statistics.median(s for _, s in v), 1),
                         'runs': len(v)} for label, v in rows.items()}
        best_tps = max(r['decode_tps'] for r in table.values())
        best_ttft = min(r['first_token_ms'] for r in table.values())
        mine = table.get(default)
        out[f'neighbours_{load}'] = {
            'candidates': table,
            'default': default,
            'default_decode_vs_best': round(mine['decode_tps'] / best_tps, 3) if mine else None,
            'default_first_token_vs_best': round(best_ttft / mine['first_token_ms'], 3)
            if mine else None}
    return out


def main():
    """Run the scenarios and print the figures; the last line is one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', help='GGUF file (default: the packaged SmolLM2-135M)')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--tokens', type=int, default=64, help='decoded tokens per measurement')
    ap.add_argument('--neighbours', default='0,1,2', help='CPU-bound neighbours per scenario')
    ap.add_argument('--cold', action='store_true',
                    help='time the whole prompt (persona too) to the first token')
    ap.add_argument('--engine', action='store_true', help='also time replies via open_engine')
    ap.add_argument('--budget-s', type=float, default=1200.0,
                    help='stop measuring after this many seconds and say so')
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the neighbours on the way
    model = Path(a.model) if a.model else packaged_chat_model()
    loads = [int(x) for x in a.neighbours.split(',')]
    settings = candidates()
    system = load_persona(paths.default_persona_dir()).system_prompt(False)
    deadline = time.perf_counter() + a.budget_s
    print(f'{model.name}; usable cores {backend.usable_cores()}, logical CPUs '
          f'{os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; candidates '
          + '; '.join(f'[{label}] {n}/{nb}' for label, n, nb in settings), flush=True)
    figures = {'model': model.name, 'usable_cores': backend.usable_cores(),
               'logical_cpus': os.cpu_count(), 'load_average_at_start': os.getloadavg()[0],
               'rounds': a.rounds, 'tokens': a.tokens,
               'candidates': {label: [n, nb] for label, n, nb in settings},
               'timed_out': False}
    sides = [('bare', lambda: Bare(model, system, a.cold))]
    if a.engine:
        sides.append(('engine', lambda: ThroughEngine(model, settings, a.tokens, a.cold)))
    for name, make in sides:
        side = make()
        results = {}
        try:
            run(side, settings, loads, a.rounds, a.tokens, deadline, name, results)
        except OutOfTime:
            figures['timed_out'] = True
            print(f'{name}: out of time after {a.budget_s:.0f} s (the CPU is busier than this '
                  'bench expects): the figures below are partial', flush=True)
        finally:
            if hasattr(side, 'close'):
                side.close()
        figures[name] = summarise(results, settings)
        if figures['timed_out']:
            break
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == '__main__':
    main()
