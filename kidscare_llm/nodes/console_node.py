"""Console node: the caregiver's web page (console/), fed by /caregiver_alert.

Topics: sub caregiver_alert (the live alerts), caregiver_command_result; pub caregiver_command
(the console asks the chat node to act: core/caregiver/commands.py). The web server (uvicorn)
runs on its own thread on console.bind:console.port (127.0.0.1:8088 by default).
"""

import logging
import socket
import sys
import threading
from typing import Optional

from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.params import CONSOLE_NODE
from kidscare_llm.nodes.runner import run_node
from kidscare_llm.transport import MSG_STRING, Transport

log = logging.getLogger('kidscare_llm.console_node')


class ConsoleNode:
    """Wires the console web app to the caregiver topics and serves it."""

    def __init__(self, transport: Transport):
        import uvicorn

        from kidscare_llm.console.app import Console, create_app
        from kidscare_llm.console.link import TransportLink
        from kidscare_llm.console.push import Pusher
        from kidscare_llm.console.security import check_bind
        from kidscare_llm.core import paths

        params = transport.parameters(CONSOLE_NODE)
        data_dir = paths.data_dir(params['data_dir'])
        self.pusher = Pusher(params['console.push_url'], params['console.push_command'],
                             params['console.push_attempts'], data_dir / 'console' / 'push.jsonl')
        self.console = Console(data_dir,
                               TransportLink(transport, params['console.command_timeout_s']),
                               params['console.lang'], params['console.session_hours'],
                               params['console.login_attempts'], params['console.upload_mb'],
                               self.pusher)
        check_bind(params['console.bind'], self.console.passwords)
        transport.subscribe('caregiver_alert', MSG_STRING, self.console.on_alert)
        config = uvicorn.Config(create_app(self.console), host=params['console.bind'],
                                port=params['console.port'], log_level='warning',
                                access_log=False, lifespan='off')
        self.server = uvicorn.Server(config)
        sock = listen(params['console.bind'], params['console.port'])
        self._thread = threading.Thread(target=self.server.run, kwargs={'sockets': [sock]},
                                        name='console-web', daemon=True)
        self._thread.start()
        self.url = f"http://{params['console.bind']}:{params['console.port']}/"
        log.info('console node ready: %s (data dir %s)', self.url, self.console.data_dir)
        if self.pusher.enabled:
            log.info('caregiver alerts are pushed to %s', self.pusher.target)

    def close(self) -> None:
        """Stop the web server."""
        self.server.should_exit = True
        self._thread.join(timeout=5.0)
        self.pusher.close()


def listen(host: str, port: int) -> socket.socket:
    """Bind the web page's socket now, so a taken port is one clear line at start-up."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f'console.bind/console.port {host}:{port}: {exc.strerror}; stop '
                          'what listens there or choose another console.port') from None
    sock.listen(64)
    return sock


def run(transport_name: Optional[str] = None, args=(), **transport_options) -> int:
    """Run the console node until Ctrl-C; 1 with one clear line on a configuration error."""
    return run_node(CONSOLE_NODE, ConsoleNode, transport_name, args, **transport_options)


def main(args=None) -> int:
    """Entry point of `ros2 run kidscare_llm console_node`."""
    return run(args=sys.argv if args is None else args)


if __name__ == '__main__':
    sys.exit(main())
