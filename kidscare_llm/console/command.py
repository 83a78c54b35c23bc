"""`kidscare-llm console`: set the caregiver password, or run the console node.

The arguments are declared here and the CLI only dispatches, so the console keeps its code
in its own package. Refusing to listen beyond loopback without a password happens before any
DDS participant or web server exists, so it takes a moment, not a start-up.
"""

import getpass
import sys

from kidscare_llm.core.params import CONSOLE_NODE


def add_arguments(parser) -> None:
    """Declare the console's options on its sub-command parser."""
    parser.add_argument('--set-password', action='store_true',
                        help='set the caregiver password (asked twice; read from stdin when '
                             'it is not a terminal) and exit')
    parser.add_argument('--params-file', metavar='FILE',
                        help='ROS 2 parameter file (default: the packaged config/kidscare.yaml)')
    parser.add_argument('-p', '--param', action='append', default=[], metavar='NAME=VALUE',
                        help='override one parameter, e.g. -p console.bind=0.0.0.0')
    parser.add_argument('--transport', choices=('auto', 'rclpy', 'dds'), default=None,
                        help='auto (default): rclpy when importable, else plain DDS')


def _password(console_dir) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip('\n')
    first = getpass.getpass('new caregiver password: ')
    if first != getpass.getpass('again: '):
        from kidscare_llm.core.errors import ConfigError
        raise ConfigError('the two passwords differ; nothing was changed')
    return first


def run(args) -> int:
    """Set the password, or check the bind address and run the console node."""
    from kidscare_llm.console.security import check_bind, PasswordFile
    from kidscare_llm.core import paths, settings

    overrides = settings.parse_overrides(args.param)
    params = settings.load(CONSOLE_NODE, args.params_file or paths.default_params_file(),
                           overrides)
    console_dir = paths.data_dir(params['data_dir']) / 'console'
    passwords = PasswordFile(console_dir / 'password')
    if args.set_password:
        passwords.set(_password(console_dir))
        print(f'caregiver password set ({passwords.path}); open the console with '
              '`kidscare-llm console` and log in', file=sys.stderr)
        return 0
    check_bind(params['console.bind'], passwords)
    if params['console.push_url']:
        from kidscare_llm.console.push import check_url

        check_url(params['console.push_url'])
    from kidscare_llm.nodes.console_node import run as run_node

    return run_node(args.transport, args=sys.argv[:1], params_file=args.params_file,
                    overrides=overrides)
