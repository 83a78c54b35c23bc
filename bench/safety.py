"""Child-safety check: recall on risky utterances, false refusals on benign ones, latency.

Reads JSONL lines {"text": ..., "label": "benign" | <category>} (default: our evaluation set,
data/safety/eval/safety_eval.jsonl) and runs SafetyChecker.check_input on every line. Prints recall
on risky lines (flagged, any category), category accuracy, the false-refusal rate on benign
lines, per-category recall, check latency p50/p95 (input and output checks; each line timed
three times, its fastest run counted, and the first pass's p95 shown too), and, in the same
run, a baseline: the plain-substring lexicon (the same YAML phrases and words, no
normalisation, no Kiwi, no similarity) with ratios, and the figures without the learned
stage (the classifier, trained on data/safety/train/*.jsonl: a file from there is marked as
training data, its figures are not held-out). Our set is split by line into a dev half
(even lines) and a test half (odd lines), reported apart. The sets and their history (which
were tuned on, which were never, how often each was read): docs/safety.md, Figures.
data/safety/eval holds the sets the classifier never trained on (kept disjoint from
data/safety/train); which of them were read or tuned on is in docs/safety.md (round 17 moved
the read fresh8-14 to training).
The learned stage reads each line's e5 embedding as the robot does (--embedder, default
e5-int8, the default rag.embedder; none: n-grams only). On the robot that vector is the one
retrieval computes for the same words in the same turn (SharedQueries), so the check's
latency is timed with it computed beforehand; the embedding's own p95 is printed beside it.
Last line: one JSON object.

  .venv/bin/python bench/safety.py [--data FILE] [--config DIR] [--embedder SPEC|none]
      [--errors]
"""

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT / 'data' / 'safety' / 'eval' / 'safety_eval.jsonl'

from kidscare_llm.core.errors import ConfigError  # noqa: E402
from kidscare_llm.core.safety.checker import SafetyChecker  # noqa: E402
from kidscare_llm.core.safety.classifier import read_labelled  # noqa: E402
from kidscare_llm.core.safety.policy import default_safety_dir  # noqa: E402


def load(path):
    """Return [(text, label)] of a JSONL file; a bad line stops with its number."""
    try:
        return read_labelled(Path(path))
    except ConfigError as exc:
        sys.exit(str(exc))


class Baseline:
    """Plain substring lexicon: the YAML phrases, words and 초성 entries, lower-cased only."""

    def __init__(self, config_dir: Path, order):
        self.entries = []
        for name in order:
            data = yaml.safe_load((config_dir / f'{name}.yaml').read_text(encoding='utf-8'))
            topics = data.get('topics') or {}  # topic words count as plain entries here
            for key in ('phrases', 'words', 'chosung'):
                for value in (data.get(key) or [], topics.get(key) or []):
                    if isinstance(value, dict):
                        value = [v for lang in value.values() for v in lang]
                    self.entries += [(v.lower(), name) for v in value]

    def check(self, text):
        """Return the first category whose entry is a substring of the text, or None."""
        low = text.lower()
        for entry, name in self.entries:
            if entry in low:
                return name
        return None


def figures(rows, predict, repeats=3):
    """Return recall, category accuracy, false refusals, per-category recall, latency.

    Each line is timed `repeats` times in separate passes; p50/p95 use each line's fastest
    time (as timeit does: on a machine shared with other work the slower runs measure the
    other work), and p95_single the first pass alone.
    """
    risky = [(t, y) for t, y in rows if y != 'benign']
    benign = [t for t, y in rows if y == 'benign']
    passes = []
    for _ in range(repeats):
        times, preds = [], []
        for text, _ in rows:
            t0 = time.perf_counter()
            preds.append(predict(text))
            times.append((time.perf_counter() - t0) * 1000)
        passes.append(times)
    best = np.min(np.array(passes), axis=0)
    single = passes[0]
    times = best
    by_text = {}
    for (text, label), pred in zip(rows, preds):
        by_text[(text, label)] = pred
    flagged = [by_text[r] is not None for r in risky]
    right = [by_text[r] == r[1] for r in risky]
    false = [by_text[(t, 'benign')] is not None for t in benign]
    per_cat = {}
    for (text, label), hit in zip(risky, flagged):
        per_cat.setdefault(label, []).append(hit)
    return {
        'n_risky': len(risky), 'n_benign': len(benign),
        'risky_recall': round(float(np.mean(flagged)), 4) if risky else None,
        'category_accuracy': round(float(np.mean(right)), 4) if risky else None,
        'benign_false_refusal': round(float(np.mean(false)), 4) if benign else None,
        'per_category_recall': {c: round(float(np.mean(v)), 3)
                                for c, v in sorted(per_cat.items())},
        'p50_ms': round(float(np.percentile(times, 50)), 3),
        'p95_ms': round(float(np.percentile(times, 95)), 3),
        'p95_single_ms': round(float(np.percentile(single, 95)), 3),
    }


ALERT_LABELS = ('self_harm', 'abuse', 'personal_info')  # lines that must reach an adult


def confusion(rows, verdicts, categories):
    """Return {true label: {predicted category or 'none': count}} and per-category P/R."""
    labels = ['benign'] + list(categories)
    cols = ['none'] + list(categories)
    matrix = {y: dict.fromkeys(cols, 0) for y in labels}
    for text, label in rows:
        v = verdicts[text]
        pred = v.category if v.flagged and v.category in categories else 'none'
        matrix.setdefault(label, dict.fromkeys(cols, 0))[pred] += 1
    per = {}
    for c in categories:
        tp = matrix.get(c, {}).get(c, 0)
        predicted = sum(row[c] for row in matrix.values())
        actual = sum(matrix.get(c, {}).values())
        per[c] = {'precision': round(tp / predicted, 3) if predicted else None,
                  'recall': round(tp / actual, 3) if actual else None, 'n': actual}
    return matrix, per


def alert_figures(rows, verdicts):
    """Return the share of crisis, abuse and personal-information lines that alert an adult.

    Also the share of benign lines that would alert (an alert nobody needed).
    """
    must = [verdicts[t].alert for t, y in rows if y in ALERT_LABELS]
    benign = [verdicts[t].alert for t, y in rows if y == 'benign']
    per = {c: round(float(np.mean([verdicts[t].alert for t, y in rows if y == c])), 3)
           for c in ALERT_LABELS if any(y == c for _, y in rows)}
    return {'alert_recall': round(float(np.mean(must)), 4) if must else None,
            'alert_recall_per_category': per, 'n_alert_lines': len(must),
            'benign_alert_rate': round(float(np.mean(benign)), 4) if benign else None}


def print_confusion(matrix, per):
    """Print the confusion matrix (rows: label, columns: verdict) and per-category P/R."""
    cols = list(next(iter(matrix.values())).keys())
    short = {c: c[:8] for c in cols}
    print('confusion matrix (rows: label, columns: verdict category):')
    print(f'  {"":14}' + ''.join(f'{short[c]:>9}' for c in cols))
    for label, row in matrix.items():
        if sum(row.values()):
            print(f'  {label:14}' + ''.join(f'{row[c]:>9}' for c in cols))
    print('per-category precision / recall (category exact):')
    for c, f in per.items():
        print(f'  {c:16}{f["precision"]!s:>7}{f["recall"]!s:>7}  (n={f["n"]})')


def ratio(a, b):
    """Return a / b rounded, None when b is 0 or missing."""
    return round(a / b, 2) if a is not None and b else None


class Embedded:
    """The lines' vectors computed beforehand, as retrieval leaves them for the check."""

    def __init__(self, real, vectors):
        self.real, self.name, self._vectors = real, real.name, vectors

    def query(self, text):
        """Return a line's vector (another text, a training line: the real embedder's)."""
        return self._vectors[text] if text in self._vectors else self.real.query(text)

    def queries(self, texts):
        """Embed training lines with the real embedder."""
        return self.real.queries(texts)


def embedded(spec, texts):
    """Return (an Embedded holding the texts' vectors, each text's embedding ms), or (None, [])."""
    if spec == 'none':
        return None, []
    from kidscare_llm.core.rag.embeddings import create_embedder

    real = create_embedder(spec)
    real.query('준비')  # the model is loaded before the clock starts
    vectors, times = {}, []
    for text in dict.fromkeys(texts):
        t = time.perf_counter()
        vectors[text] = real.query(text)
        times.append((time.perf_counter() - t) * 1000)
    return Embedded(real, vectors), times


def main(argv=None):
    """Run the bench and print the figures; the last line is JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default=str(DEFAULT_DATA), help='JSONL file of text/label lines')
    ap.add_argument('--config', default=None, help='safety config folder (default: packaged)')
    ap.add_argument('--embedder', default='e5-int8',
                    help="the robot's sentence embedder (rag.embedder), or none")
    ap.add_argument('--errors', action='store_true', help='print misses and false alarms')
    args = ap.parse_args(argv)
    rows = load(args.data)
    if not rows:
        sys.exit(f'{args.data}: no lines')
    config_dir = Path(args.config) if args.config else default_safety_dir()
    t0 = time.perf_counter()
    embedder, embed_times = embedded(args.embedder, [t for t, _ in rows])
    checker = SafetyChecker.load(config_dir, embedder=embedder).warm_up()
    load_s = time.perf_counter() - t0
    for text, _ in rows[:50]:  # warm caches before timing
        checker.check_input(text)

    verdicts = {}

    def ours(text):
        v = checker.check_input(text)
        verdicts[text] = v
        return v.category if v.flagged else None

    base = Baseline(config_dir, checker.policy.priority)
    ours_all = figures(rows, ours)
    base_all = figures(rows, base.check)
    out_passes = []
    for _ in range(3):
        out_times = []
        for text, _ in rows:
            t = time.perf_counter()
            checker.check_output(text)
            out_times.append((time.perf_counter() - t) * 1000)
        out_passes.append(out_times)
    out_times = list(np.min(np.array(out_passes), axis=0))
    similarity_only = sum(1 for t, y in rows if y != 'benign' and verdicts[t].flagged
                          and 'similar to' in verdicts[t].reason)
    # The classifier is the last stage: without it, the lines only it flagged pass.
    by_clf = {t for t, v in verdicts.items() if v.flagged and ': classifier (' in v.reason}
    risky = [t for t, y in rows if y != 'benign']
    benign = [t for t, y in rows if y == 'benign']
    without_clf = {
        'risky_recall': round(sum(verdicts[t].flagged and t not in by_clf for t in risky)
                              / max(1, len(risky)), 4),
        'benign_false_refusal': round(sum(verdicts[t].flagged and t not in by_clf
                                          for t in benign) / max(1, len(benign)), 4)}
    examples = checker.policy.classifier.examples.resolve()
    trained_on = checker.policy.classifier.enabled and \
        Path(args.data).resolve().parent == examples

    print(f'data: {args.data} ({ours_all["n_risky"]} risky, {ours_all["n_benign"]} benign); '
          f'config: {config_dir}; load + warm-up {load_s:.2f} s')
    head = f'{"":28}{"ours":>10}{"baseline":>10}{"ratio":>8}'
    print(head)
    for key, label in (('risky_recall', 'risky recall'),
                       ('category_accuracy', 'category accuracy'),
                       ('benign_false_refusal', 'benign false refusals'),
                       ('p50_ms', 'check p50 ms'), ('p95_ms', 'check p95 ms'),
                       ('p95_single_ms', 'p95 ms, first pass only')):
        a, b = ours_all[key], base_all[key]
        print(f'{label:28}{a!s:>10}{b!s:>10}{ratio(a, b)!s:>8}')
    print(f'output check (one sentence) p50 {np.percentile(out_times, 50):.3f} ms, '
          f'p95 {np.percentile(out_times, 95):.3f} ms')
    if embed_times:
        print(f'embedding ({args.embedder}, shared with retrieval, not in the check above) '
              f'p50 {np.percentile(embed_times, 50):.2f} ms, '
              f'p95 {np.percentile(embed_times, 95):.2f} ms')
    print(f'risky lines caught only by the similarity stage: {similarity_only}')
    print(f'classifier stage: {len(by_clf & set(risky))} risky and {len(by_clf & set(benign))} '
          f'benign lines flagged by it alone; without it recall {without_clf["risky_recall"]}, '
          f'false refusals {without_clf["benign_false_refusal"]}')
    if trained_on:
        print(f'note: {args.data} is one of the training files of the classifier '
              f'({examples}): its figures are not held-out figures')
    print('per-category recall (ours / baseline):')
    for cat, r in ours_all['per_category_recall'].items():
        print(f'  {cat:16}{r:>7}{base_all["per_category_recall"].get(cat)!s:>8}')
    matrix, per = confusion(rows, verdicts, checker.policy.priority)
    print_confusion(matrix, per)
    alerts = alert_figures(rows, verdicts)
    print(f'alert recall (self_harm, abuse, personal_info lines that alert): '
          f'{alerts["alert_recall"]} of {alerts["n_alert_lines"]} '
          f'{alerts["alert_recall_per_category"]}; benign lines that alert: '
          f'{alerts["benign_alert_rate"]}')
    splits = {}
    if Path(args.data).resolve() == DEFAULT_DATA.resolve():
        for name, part in (('dev', rows[0::2]), ('test', rows[1::2])):
            splits[name] = {k: v for k, v in figures(part, ours, repeats=1).items()
                            if k in ('risky_recall', 'category_accuracy', 'benign_false_refusal')}
            print(f'{name} half (lines {"even" if name == "dev" else "odd"}): {splits[name]}')
    if args.errors:
        for text, label in rows:
            v = verdicts[text]
            if label != 'benign' and not v.flagged:
                print(f'MISS   {label:14} {text}')
            elif label != 'benign' and v.category != label:
                print(f'WRONG  {label:14} {text}  -> {v.category} ({v.reason})')
            elif label == 'benign' and v.flagged:
                print(f'FALSE  {v.category:14} {text}  ({v.reason})')
            if label in ALERT_LABELS and not v.alert:
                print(f'NOALRT {label:14} {text}  -> {v.category} ({v.reason})')
    result = {
        'risky_recall': ours_all['risky_recall'],
        'category_accuracy': ours_all['category_accuracy'],
        'benign_false_refusal': ours_all['benign_false_refusal'],
        'alert_recall': alerts['alert_recall'],
        'alert_recall_per_category': alerts['alert_recall_per_category'],
        'benign_alert_rate': alerts['benign_alert_rate'],
        'per_category': per,
        'confusion': matrix,
        'check_p50_ms': ours_all['p50_ms'],
        'check_p95_ms': ours_all['p95_ms'],
        'check_p95_single_pass_ms': ours_all['p95_single_ms'],
        'output_check_p95_ms': round(float(np.percentile(out_times, 95)), 3),
        'embedder': args.embedder,
        'embedding_p95_ms': round(float(np.percentile(embed_times, 95)), 3) if embed_times
        else None,
        'per_category_recall': ours_all['per_category_recall'],
        'n_risky': ours_all['n_risky'], 'n_benign': ours_all['n_benign'],
        'baseline': {k: base_all[k] for k in
                     ('risky_recall', 'category_accuracy', 'benign_false_refusal', 'p95_ms')},
        'recall_ratio_vs_baseline': ratio(ours_all['risky_recall'], base_all['risky_recall']),
        'false_refusal_ratio_vs_baseline': ratio(ours_all['benign_false_refusal'],
                                                 base_all['benign_false_refusal']),
        'similarity_only_catches': similarity_only,
        'classifier_only_catches': len(by_clf & set(risky)),
        'without_classifier': without_clf,
        'data_is_classifier_training': trained_on,
        'splits': splits,
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == '__main__':
    main()
