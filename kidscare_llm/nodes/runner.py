"""The life of every node process: create the transport, build the node, spin, close cleanly.

One place for what each node's main() must get right: one clear line (no traceback) for a
configuration error, a quiet exit on Ctrl-C or SIGINT from ros2 launch, and native objects
freed while their libraries can still clean up.
"""

import faulthandler
import gc
import logging
import signal
import sys
import threading
from typing import Callable, Optional

from kidscare_llm.core.errors import KidscareError
from kidscare_llm.doctor import discovery_hint
from kidscare_llm.transport import choose, create, Transport


def run_node(node_name: str, factory: Callable[[Transport], object],
             transport_name: Optional[str] = None, args=(),
             body: Optional[Callable[[object, Transport], int]] = None,
             **transport_options) -> int:
    """Run one node until Ctrl-C (or body returns); return the process exit code.

    factory(transport) builds the node (it must have close()); body(node, transport), when
    given, replaces spinning (e.g. stt_node --file). 1: configuration error, 130: stopped
    during start-up. Whatever happens, the node is closed and the transport shut down (its
    threads joined) before this returns, so the process exits with this code and nothing
    else: no thread is left inside a native library while the interpreter exits.
    """
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')
    faulthandler.enable()  # a native crash leaves every thread's Python stack in the log
    try:
        kind = choose(transport_name)
        transport = create(node_name, kind, args=args, **transport_options)
    except KidscareError as exc:
        print(f'{node_name}: {exc}', file=sys.stderr)
        return 1
    transport.log.info(discovery_hint(kind))
    if kind == 'dds' and threading.current_thread() is threading.main_thread():
        # rclpy turns SIGTERM into a shutdown itself; plain DDS would just die, so SIGTERM
        # (systemd, docker stop, a supervisor) stops the node as Ctrl-C does: closed cleanly
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    node = None
    try:
        node = factory(transport)
        if body is None:
            transport.spin()
            return 0
        return body(node, transport)
    except KidscareError as exc:
        print(f'{node_name}: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C, SIGINT from ros2 launch (or SIGTERM on DDS): a stop
        if node is None:
            print(f'{node_name}: stopped during start-up', file=sys.stderr)
            return 130
        return 0
    except Exception as exc:
        if node is None and transport.stopping():  # SIGTERM while a model was loading
            print(f'{node_name}: stopped during start-up', file=sys.stderr)
            return 130
        if node is None:  # a broken install (a missing library): one line, exit 1, no abort
            logging.getLogger(node_name).debug('start-up failed', exc_info=True)
            print(f'{node_name}: start-up failed: {type(exc).__name__}: {exc} (run '
                  'kidscare-llm doctor)', file=sys.stderr)
            return 1
        raise
    finally:
        try:
            if node is not None:
                node.close()
        finally:
            transport.shutdown()
            node = None
            gc.collect()  # free native objects while their libraries can still clean up
