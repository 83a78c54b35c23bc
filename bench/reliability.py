"""Reliability under a flood: 5 sessions publish 500 utterances over DDS as fast as they can.

A real chat node process (packaged GGUF) answers; every utterance must get exactly one answer
on /robot_reply, a real reply or the explicit "busy" line, counted here; none may be lost, the
node must be alive at the end, and its memory bounded. Baseline: the node's RSS when idle.

  .venv/bin/python bench/reliability.py [--utterances 500] [--sessions 5]

Last line: JSON with sent, answered, busy, lost, alive, max_rss_mb, idle_rss_mb, rss_ratio.
"""

import argparse
import json
import os
from pathlib import Path
import random
import subprocess
import sys
import tempfile
import threading
import time

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault('CYCLONEDDS_URI', f'file://{ROOT / "test" / "cyclonedds-loopback.xml"}')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(201, 230)))
BIN = Path(sys.executable).parent

from kidscare_llm.core.chat.engine import SPOKEN  # noqa: E402  (after the DDS environment is set)
from kidscare_llm.transport import KEEP_ALL, MSG_STRING  # noqa: E402
from kidscare_llm.transport.dds import DdsTransport  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def start_node(data: Path, log: Path) -> subprocess.Popen:
    """Start the chat node over plain DDS with the packaged model and short replies."""
    env = dict(os.environ, KIDSCARE_DATA_DIR=str(data), PYTHONUNBUFFERED='1')
    with log.open('wb') as out:
        return subprocess.Popen([str(BIN / 'kidscare-llm'), 'node', '--transport', 'dds',
                                 '-p', 'llm.max_tokens=64', '-p', 'llm.temperature=0'],
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(log: Path, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    """Wait until the node's worker has evaluated the persona (it answers at once after)."""
    deadline = time.monotonic() + timeout
    while 'persona prefix evaluated' not in log.read_text(errors='replace'):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f'chat node did not start:\n{log.read_text(errors="replace")[-3000:]}')
        time.sleep(0.2)


def main() -> int:
    """Run the flood and print the figures; exit 1 if anything was lost or the node died."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--utterances', type=int, default=500)
    parser.add_argument('--sessions', type=int, default=5)
    parser.add_argument('--drain-timeout', type=float, default=600.0,
                        help='seconds to wait for the last answers')
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix='kidscare-reliability-'))
    log = work / 'node.log'
    proc = start_node(work / 'data', log)
    answers = []
    lock = threading.Lock()
    monitor = DdsTransport('bench_monitor')
    monitor.subscribe('/robot_reply', MSG_STRING,
                      lambda text: (lock.acquire(), answers.append(text), lock.release()),
                      KEEP_ALL)
    clients = [DdsTransport(f'bench_session_{i}') for i in range(args.sessions)]
    try:
        wait_ready(log, proc)
        pubs = []
        for client in clients:
            pubs.append((client.publisher('/chat_node/session', MSG_STRING),
                         client.publisher('/user_utterance', MSG_STRING, KEEP_ALL)))
            if not client.wait_for_subscribers('/user_utterance', MSG_STRING, 60):
                sys.exit('chat node not discovered over DDS')
        monitor.wait_for_publishers('/robot_reply', MSG_STRING, 60)
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
            switch, say = pubs[i]
            switch(f'child{i}')
            for n in range(share[i]):
                say(f'child{i} says hello number {n}')

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
        busy = got.count(SPOKEN['busy'])
        answered = len(got) - busy
        lost = max(0, sent - len(got))
        extra = max(0, len(got) - sent)
        print(f'answers: {answered} replies + {busy} busy = {len(got)} of {sent} '
              f'in {drain_s:.1f} s; lost {lost}, extra {extra}; node alive: {alive}')
        print(f'node RSS: idle {idle_rss:.0f} MB, max under the flood {max_rss[0]:.0f} MB '
              f'(ratio {max_rss[0] / idle_rss:.2f} against idle, same run)')
        figures = {'sent': sent, 'answered': answered, 'busy': busy, 'lost': lost,
                   'extra': extra, 'alive': alive, 'max_rss_mb': round(max_rss[0], 1),
                   'idle_rss_mb': round(idle_rss, 1),
                   'rss_ratio': round(max_rss[0] / idle_rss, 3),
                   'publish_rate_per_s': round(sent / publish_s), 'drain_s': round(drain_s, 1)}
        print(json.dumps(figures))
        return 0 if (lost == 0 and extra == 0 and alive) else 1
    finally:
        for transport in clients + [monitor]:
            transport.shutdown()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == '__main__':
    sys.exit(main())
