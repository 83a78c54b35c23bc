"""The optional judge stage, measured apart: what it adds on unsure lines, and what it costs.

Runs the fast stages on a labelled set (JSONL {"text", "label"}), then asks the judge (the
chat model named by --model, default the packaged SmolLM2-135M, through llama.cpp; or
--base-url for an OpenAI-compatible server) about every line they let pass whose classifier
P(not benign) is in [--low, threshold). Prints, in the same run, recall and false refusals
without the judge (the baseline) and with it, the lines asked, and the judge's latency
p50/p95 (the fast stages' own p95 is in bench/safety.py). The packaged 135M model is far too
small to judge; the figures that matter come from the 8B or a server.
Last line: one JSON object.

  .venv/bin/python bench/safety_judge.py [--data FILE ...] [--model GGUF | --base-url URL]
      [--low 0.3] [--limit N]
"""

import argparse
import json
from pathlib import Path
import sys

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = [ROOT / 'data' / 'safety' / 'eval' / f'safety_fresh{i}.jsonl' for i in (9, 10)]

from kidscare_llm.core import settings  # noqa: E402
from kidscare_llm.core.build import build_backend  # noqa: E402
from kidscare_llm.core.paths import data_dir  # noqa: E402
from kidscare_llm.core.safety.checker import SafetyChecker  # noqa: E402
from kidscare_llm.core.safety.judge import SafetyJudge  # noqa: E402


def rows_of(paths, limit):
    """Return the labelled lines of the files (the first `limit` when it is set)."""
    rows = [json.loads(line) for p in paths for line in open(p, encoding='utf-8')
            if line.strip()]
    return rows[:limit] if limit else rows


def main() -> int:
    """Measure the fast stages, then the same lines with the judge asked when unsure."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', nargs='+', type=Path, default=DEFAULT_DATA)
    parser.add_argument('--model', default='', help='a GGUF file (default: the packaged one)')
    parser.add_argument('--base-url', default='', help='an OpenAI-compatible server instead')
    parser.add_argument('--low', type=float, default=0.3)
    parser.add_argument('--limit', type=int, default=0)
    args = parser.parse_args()
    overrides = {'model.path': args.model} if args.model else {}
    if args.base_url:
        overrides.update({'llm.backend': 'openai', 'llm.base_url': args.base_url})
    params = settings.load('chat_node', overrides=overrides)
    backend = build_backend(params, data_dir(params['data_dir']))
    checker = SafetyChecker.load().warm_up()
    judge = SafetyJudge(backend, checker.policy.priority, low=args.low)
    rows = rows_of(args.data, args.limit)
    before = [checker.check_input(r['text']).flagged for r in rows]
    checker.judge = judge
    after = [checker.check_input(r['text']).flagged for r in rows]
    risky = [i for i, r in enumerate(rows) if r['label'] != 'benign']
    benign = [i for i, r in enumerate(rows) if r['label'] == 'benign']

    def rate(flags, idx):
        return round(sum(flags[i] for i in idx) / max(1, len(idx)), 4)

    lat = sorted(judge.latencies_ms) or [0.0]
    figures = {
        'model': backend.describe(), 'sets': [p.name for p in args.data], 'lines': len(rows),
        'asked': len(judge.latencies_ms),
        'recall_fast': rate(before, risky), 'recall_with_judge': rate(after, risky),
        'false_refusals_fast': rate(before, benign),
        'false_refusals_with_judge': rate(after, benign),
        'judge_p50_ms': round(lat[len(lat) // 2], 1),
        'judge_p95_ms': round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1)}
    print(f"{figures['model']}: asked {figures['asked']} of {len(rows)} lines; recall "
          f"{figures['recall_fast']} -> {figures['recall_with_judge']}, false refusals "
          f"{figures['false_refusals_fast']} -> {figures['false_refusals_with_judge']}; judge "
          f"p50 {figures['judge_p50_ms']} ms, p95 {figures['judge_p95_ms']} ms")
    print(json.dumps(figures))
    return 0


if __name__ == '__main__':
    sys.exit(main())
