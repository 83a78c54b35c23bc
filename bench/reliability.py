"""Reliability under a flood: 5 sessions publish 500 utterances over DDS as fast as they can.

A real chat node process (packaged GGUF) answers; every utterance must get exactly one answer
on /robot_reply, a real reply or the explicit "busy" line, counted here; none may be lost, the
node must be alive at the end, and its memory bounded. Baseline: the node's RSS when idle.

  .venv/bin/python bench/reliability.py [--utterances 500] [--sessions 5]

Last line: JSON with sent, answered, busy, lost, alive, max_rss_mb, idle_rss_mb, rss_ratio
(and safety, errors, reply_kinds: what the answers were).
"""

import argparse
from collections import Counter
from pathlib import Path
import tempfile
import threading
import time

import harness


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def main() -> int:
    """Run the flood and print the figures; exit 1 if anything was lost or the node died."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--utterances', type=int, default=500)
    parser.add_argument('--sessions', type=int, default=5)
    parser.add_argument('--drain-timeout', type=float, default=600.0,
                        help='seconds to wait for the last answers')
    args = parser.parse_args()

    env = harness.loopback_env()
    work = Path(tempfile.mkdtemp(prefix='kidscare-reliability-'))
    answers = []
    lock = threading.Lock()

    def on_reply(text: str) -> None:
        with lock:
            answers.append(text)
    proc = harness.start_node('chat', {'llm.max_tokens': 64, 'llm.temperature': 0}, env,
                              work / 'data', timeout=300)
    monitor = clients = None
    try:
        monitor = harness.NodeClient(env, 'bench_monitor', on_reply=on_reply)
        monitor.wait(60)
        clients = [harness.NodeClient(env, f'bench_session_{i}', listen=False, keep_all=True)
                   for i in range(args.sessions)]
        for client in clients:
            client.wait(60)
        idle_rss = rss_mb(proc.pid)
        max_rss = [idle_rss]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.1):
                max_rss[0] = max(max_rss[0], rss_mb(proc.pid))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        share = [args.utterances // args.sessions + (i < args.utterances % args.sessions)
                 for i in range(args.sessions)]

        def flood(i: int) -> None:
            clients[i].switch(f'child{i}', settle=0.0)
            for n in range(share[i]):
                clients[i].say(f'child{i} says hello number {n}')

        start = time.monotonic()
        threads = [threading.Thread(target=flood, args=(i,)) for i in range(args.sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent = sum(share)
        publish_s = time.monotonic() - start
        print(f'published {sent} utterances from {args.sessions} sessions in {publish_s:.2f} s '
              f'({sent / publish_s:.0f}/s)', flush=True)
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            with lock:
                if len(answers) >= sent:
                    break
            time.sleep(0.1)
        drain_s = time.monotonic() - start
        time.sleep(2.0)  # anything beyond one answer each would show up now
        sampling.set()
        alive = proc.poll() is None
        with lock:
            got = list(answers)
        kinds = Counter(monitor.classify(text) for text in got)
        busy = kinds['busy']
        answered = len(got) - busy
        lost = max(0, sent - len(got))
        extra = max(0, len(got) - sent)
        print(f'answers: {answered} replies + {busy} busy = {len(got)} of {sent} '
              f'in {drain_s:.1f} s; lost {lost}, extra {extra}; node alive: {alive}; '
              f'kinds {dict(kinds)}')
        ratio = round(max_rss[0] / idle_rss, 3) if idle_rss else None  # None: node gone
        print(f'node RSS: idle {idle_rss:.0f} MB, max under the flood {max_rss[0]:.0f} MB '
              f'(ratio {ratio} against idle, same run)')
        figures = {'sent': sent, 'answered': answered, 'busy': busy, 'lost': lost,
                   'extra': extra, 'alive': alive, 'max_rss_mb': round(max_rss[0], 1),
                   'idle_rss_mb': round(idle_rss, 1),
                   'rss_ratio': ratio,
                   'publish_rate_per_s': round(sent / publish_s), 'drain_s': round(drain_s, 1),
                   'safety': kinds['safety'], 'errors': kinds['error'],
                   'reply_kinds': dict(kinds)}
        harness.emit(figures)
        return 0 if (lost == 0 and extra == 0 and alive) else 1
    finally:
        for client in (clients or []) + ([monitor] if monitor else []):
            client.close()
        harness.stop(proc)


if __name__ == '__main__':
    harness.run(main)
