"""Conversation-level risk: risky conversations alerted by the turn that completes them.

Reads JSONL lines {"id", "label": grooming | low_mood | bullying_repeat | benign, "turns":
[child turns...], "complete_at": N} (N: the turn, counted from 1, by which the pattern is
told; null for benign look-alikes) and feeds each conversation, turn by turn, to a fresh
child of the checker's conversation stage (the input check runs first on each turn, as in
the engine). Prints recall (risky conversations alerted in their own category by
complete_at; any category too), false alerts on look-alikes, per label, and the time per turn.
Default: the blind evaluation file data/safety/eval/conversations_eval.jsonl (its false alerts
were read in round 12); data/safety/eval/conversations_eval2-4.jsonl were never read beyond
their totals (docs/safety.md says how often), and data/safety/train/conversations_r1*.jsonl
are the tuning files. The learned stages read each
turn's e5 embedding as on the robot (--embedder, default e5-int8; none: n-grams only); the
time per turn includes computing it, which on the robot retrieval shares. Last line: one JSON
object.

  .venv/bin/python bench/safety_conversations.py [--data FILE] [--embedder SPEC|none] [--errors]
"""

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT / 'data' / 'safety' / 'eval' / 'conversations_eval.jsonl'

from kidscare_llm.core.safety.checker import SafetyChecker  # noqa: E402


def run(checker, rows, errors=False):
    """Return the figures of a list of conversations."""
    monitor = checker.conversation
    hit_own, hit_any, hit_end, false, per, times = [], [], [], [], {}, []
    for n, row in enumerate(rows):
        user = f'bench-{n}'
        first = {}  # category -> turn (from 1) of its first alert
        for k, text in enumerate(row['turns'], 1):
            t0 = time.perf_counter()
            verdict = checker.check_input(text)
            for alert in monitor.observe(user, text, now=1e9 + k, verdict=verdict):
                first.setdefault(alert.category, (k, alert.reason))
            times.append((time.perf_counter() - t0) * 1000)
        label, due = row['label'], row.get('complete_at')
        if label == 'benign':
            false.append(bool(first))
            if errors and first:
                print(f'FALSE  {row["id"]}: {first}')
            continue
        due = due or len(row['turns'])
        own = label in first and first[label][0] <= due
        hit_own.append(own)
        hit_any.append(any(k <= due for k, _ in first.values()))
        hit_end.append(label in first)
        per.setdefault(label, []).append(own)
        if errors and not own:
            print(f'MISS   {row["id"]} {label} due {due}: got {first or "nothing"}; '
                  f'turns {row["turns"]}')
    return {
        'conversation_recall': round(float(np.mean(hit_own)), 4) if hit_own else None,
        'conversation_recall_any_category': round(float(np.mean(hit_any)), 4) if hit_any
        else None,
        'conversation_recall_by_last_turn': round(float(np.mean(hit_end)), 4) if hit_end
        else None,
        'conversation_false_alerts': round(float(np.mean(false)), 4) if false else None,
        'per_label_recall': {k: round(float(np.mean(v)), 3) for k, v in sorted(per.items())},
        'n_risky': len(hit_own), 'n_benign': len(false),
        'turn_p95_ms': round(float(np.percentile(times, 95)), 3) if times else None,
    }


def main(argv=None):
    """Run the bench and print the figures; the last line is JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default=str(DEFAULT_DATA), help='JSONL file of conversations')
    ap.add_argument('--config', default=None, help='safety config folder (default: packaged)')
    ap.add_argument('--embedder', default='e5-int8',
                    help="the robot's sentence embedder (rag.embedder), or none")
    ap.add_argument('--errors', action='store_true', help='print misses and false alerts')
    args = ap.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.data).read_text(encoding='utf-8')
            .splitlines() if line.strip()]
    embedder = None
    if args.embedder != 'none':
        from kidscare_llm.core.rag.embeddings import create_embedder
        embedder = create_embedder(args.embedder)
    checker = SafetyChecker.load(Path(args.config) if args.config else None,
                                 embedder=embedder).warm_up()
    if not checker.conversation.enabled:
        sys.exit('the conversation stage is off (conversation.yaml missing or enabled: false)')
    result = dict(run(checker, rows, args.errors), embedder=args.embedder)
    print(f'data: {args.data} ({result["n_risky"]} risky, {result["n_benign"]} look-alikes)')
    print(f'recall by complete_at (own category): {result["conversation_recall"]} '
          f'(any category: {result["conversation_recall_any_category"]}; by the last turn: '
          f'{result["conversation_recall_by_last_turn"]}) '
          f'{result["per_label_recall"]}; look-alikes alerted: '
          f'{result["conversation_false_alerts"]}; p95 per turn (check + stage) '
          f'{result["turn_p95_ms"]} ms')
    print(json.dumps(result, ensure_ascii=False))


if __name__ == '__main__':
    main()
