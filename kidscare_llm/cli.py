"""`kidscare-llm`: chat in the terminal, run the chat node, talk to a running node, show params.

Commands:
  kidscare-llm chat                  talk to the robot here, through the core (no ROS needed)
  kidscare-llm node                  run the chat node (rclpy if importable, else plain DDS)
  kidscare-llm say "안녕!"            publish one utterance, print the reply that comes back
  kidscare-llm gui                   the chat window, a client of the running node (or --local)
  kidscare-llm ingest DOCS...        index documents into the knowledge base (incremental)
  kidscare-llm params --yaml         print every parameter with its default
  kidscare-llm download-model        fetch the Korean 8B GGUF once (the node never goes online)
  kidscare-llm doctor                check this shell: ROS 2, discovery, Pythons, llama.cpp, model
  kidscare-llm console               the caregiver web page (http://127.0.0.1:8088)
  kidscare-llm memory list --user 라이언  what the robot remembers of a child (forget, edit, clear)
"""

import argparse
import json
import logging
import queue
import sys
import time
from typing import List, Optional

from kidscare_llm.core import settings
from kidscare_llm.core.errors import KidscareError

EXIT_USAGE = 2


def _param_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--params-file', metavar='FILE',
                        help='ROS 2 parameter file (default: the packaged config/kidscare.yaml)')
    parser.add_argument('-p', '--param', action='append', default=[], metavar='NAME=VALUE',
                        help='override one parameter, e.g. -p model.path=/models/x.gguf')


def _transport_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--transport', choices=('auto', 'rclpy', 'dds'), default=None,
                        help='auto (default, or $KIDSCARE_TRANSPORT): rclpy when importable, '
                             'else plain DDS with ROS 2 wire names')


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog='kidscare-llm', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    chat = sub.add_parser('chat', help='talk to the robot in this terminal')
    _param_options(chat)
    chat.add_argument('--user', default=None, help='who is talking (default chat.default_user)')
    chat.add_argument('-m', '--message', action='append', default=[],
                      help='say this and exit (repeat for several turns) instead of prompting')

    node = sub.add_parser('node', help='run the chat node without ros2 launch')
    _param_options(node)
    _transport_option(node)
    node.add_argument('-r', '--remap', action='append', default=[], metavar='FROM:=TO',
                      help='remap a topic or service name, e.g. -r user_utterance:=/stt/text')

    say = sub.add_parser('say', help='publish one utterance and print the reply')
    say.add_argument('text', help='what the user says')
    say.add_argument('--user', help='switch the node to this user (~/session) first')
    say.add_argument('--reset', action='store_true', help='call ~/reset_session first')
    say.add_argument('--timeout', type=float, default=120.0, help='seconds to wait (120)')
    say.add_argument('--node-name', default=settings.CHAT_NODE, help='chat node name')
    _transport_option(say)

    ingest = sub.add_parser('ingest', help='index documents into the knowledge base')
    ingest.add_argument('paths', nargs='+', help='.txt, .md, .pdf, .docx files or folders')
    ingest.add_argument('--delete', action='store_true',
                        help='also drop documents once indexed under these paths that are gone')
    _param_options(ingest)

    fetch = sub.add_parser('download-model',
                           help='download model.repo/model.file into the data dir once')
    _param_options(fetch)

    gui = sub.add_parser('gui', help='open the chat window (a client of the running node)')
    gui.add_argument('--local', action='store_true',
                     help='run the chat engine in this process instead (no robot needed)')
    _transport_option(gui)
    gui.add_argument('--lang', choices=('ko', 'en'), default='ko', help='window language (ko)')
    _param_options(gui)
    gui.add_argument('--node-name', default=settings.CHAT_NODE, help='chat node name')
    gui.add_argument('--wait', type=float, default=10.0, metavar='SECONDS',
                     help='say so when no chat node is found within this many seconds (10)')

    doctor = sub.add_parser('doctor', help='check this environment and say what to fix')
    _param_options(doctor)
    doctor.add_argument('--discovery-range', default='LOCALHOST', metavar='RANGE',
                        help="the launch's discovery_range to compare this shell with "
                             '(LOCALHOST, as chat.launch.py)')

    console = sub.add_parser('console', help='the caregiver web page (alerts, children, '
                             'rules, data) on http://127.0.0.1:8088')
    from kidscare_llm.console.command import add_arguments
    add_arguments(console)

    memory = sub.add_parser('memory', help='list, edit or delete what the robot remembers '
                            'of a child')
    from kidscare_llm.memory_command import add_arguments as memory_arguments
    memory_arguments(memory)

    params = sub.add_parser('params', help='print the parameters and their defaults')
    fmt = params.add_mutually_exclusive_group()
    fmt.add_argument('--yaml', action='store_true', help='as a ROS 2 parameter file (default)')
    fmt.add_argument('--markdown', action='store_true', help='as a Markdown table')
    params.add_argument('--node', default=settings.CHAT_NODE, choices=sorted(settings.PARAMS),
                        help='whose table --markdown prints (default chat_node)')
    return parser


def _load_params(args) -> dict:
    from kidscare_llm.core import paths

    overrides = settings.parse_overrides(args.param)
    return settings.load(settings.CHAT_NODE, args.params_file or paths.default_params_file(),
                         overrides)


def cmd_chat(args) -> int:
    """Run a terminal conversation through the core engine, printing tokens as they stream."""
    from kidscare_llm.core.build import build_engine

    params = _load_params(args)
    engine = build_engine(params)
    engine.on_alert = lambda alert: print(f'[caregiver alert: {alert["category"]}, recorded in '
                                          'alerts.jsonl]', file=sys.stderr)
    if params['memory.warm_start']:
        engine.warm()
    logging.getLogger('kidscare_llm').setLevel(logging.WARNING)  # keep the conversation clean
    user = args.user or params['chat.default_user']
    print(f'{engine.describe()}\nuser {user}, session {engine.session(user)}; '
          '/reset starts a new session, /user NAME switches user, /quit ends', file=sys.stderr)
    scripted = list(args.message)
    while True:
        if args.message:
            if not scripted:
                return 0
            text = scripted.pop(0)
            print(f'{user}> {text}')
        else:
            try:
                text = input(f'{user}> ')
            except EOFError:
                print()
                return 0
        command, _, rest = text.strip().partition(' ')
        if command == '/quit':
            return 0
        if command == '/reset':
            print(f'ChatBot: 초기화 됨 ({engine.reset(user)})')
            continue
        if command == '/user' and rest.strip():
            user = rest.strip()
            print(f'(user {user}, session {engine.session(user)})')
            continue
        if not text.strip():
            continue
        print('robot> ', end='', flush=True)
        reply = engine.reply(user, text, on_piece=lambda p: print(p, end='', flush=True))
        if reply.pieces == 0:
            print(reply.text, end='')
        print()
        for i, src in enumerate(reply.sources, 1):
            print(f'  [{i}] {src["source"]}#{src["position"]} (score {src["score"]})')


def cmd_node(args) -> int:
    """Run the chat node on the chosen transport."""
    from kidscare_llm.nodes.chat_node import run

    remaps = settings.parse_overrides(r.replace(':=', '=', 1) for r in args.remap)
    return run(args.transport, args=sys.argv[:1], params_file=args.params_file,
               overrides=settings.parse_overrides(args.param), remaps=remaps)


def cmd_say(args) -> int:
    """Publish one utterance to a running chat node and print the streamed and final reply."""
    from kidscare_llm.core.chat.inputs import clean_utterance
    from kidscare_llm.core.errors import EmptyUtterance
    from kidscare_llm.transport import create, MSG_STRING

    try:
        text = clean_utterance(args.text, 1_000_000)  # the node applies its own length limit
    except EmptyUtterance:
        print('kidscare-llm say: nothing to say (the text is empty once control characters '
              'are removed)', file=sys.stderr)
        return EXIT_USAGE

    transport = create('kidscare_llm_say', args.transport)
    try:
        replies: queue.Queue = queue.Queue()
        transport.subscribe('robot_reply', MSG_STRING, replies.put)
        transport.subscribe('robot_reply_partial', MSG_STRING,
                            lambda s: print(f'  … {s}', file=sys.stderr))
        publish = transport.publisher('user_utterance', MSG_STRING)
        deadline = time.monotonic() + args.timeout
        if not (transport.wait_for_subscribers('user_utterance', MSG_STRING, args.timeout)
                and transport.wait_for_publishers('robot_reply', MSG_STRING, args.timeout)):
            print(f'no chat node found within {args.timeout:.0f} s (is it running, on the same '
                  'ROS_DOMAIN_ID?)', file=sys.stderr)
            return 1
        if args.user:
            transport.publisher(f'/{args.node_name}/session', MSG_STRING)(args.user)
            time.sleep(0.3)  # separate topics are not ordered: let the switch land first
        if args.reset:
            ok, message = transport.call_trigger(f'/{args.node_name}/reset_session',
                                                 max(1.0, deadline - time.monotonic()))
            print(f'reset: {_session_line(ok, message)}', file=sys.stderr)
        publish(text)
        try:
            print(replies.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            print(f'no reply within {args.timeout:.0f} s', file=sys.stderr)
            return 1
        return 0
    finally:
        transport.shutdown()


def cmd_ingest(args) -> int:
    """Index documents (progress bar, one line per failure); 1 if any file failed."""
    from pathlib import Path

    from kidscare_llm.core.build import build_knowledge_base

    params = _load_params(args)
    kb = build_knowledge_base(params)
    report = kb.ingest([Path(p) for p in args.paths], delete_missing=args.delete, progress=True)
    for source, n in (('added', report.added), ('updated', report.updated),
                      ('removed', report.removed)):
        for path in n:
            print(f'{source:8s} {path}')
    for path, error in report.failed:
        print(f'failed   {error}', file=sys.stderr)
    print(f'{kb.name}: {report.summary()}; {len(kb)} chunks in total')
    return 1 if report.failed else 0


def cmd_download_model(args) -> int:
    """Download the configured GGUF (default: the Korean 8B Q4) into the data dir's cache."""
    from kidscare_llm.core import paths
    from kidscare_llm.core.llm import models

    params = _load_params(args)
    cache = paths.data_dir(params['data_dir']) / 'models'
    hit = models.cached_model(params['model.repo'], params['model.file'], cache)
    if hit is not None:
        print(f'already downloaded: {hit}')
        return 0
    print(models.download_model(params['model.repo'], params['model.file'], cache))
    return 0


def cmd_gui(args) -> int:
    """Open the chat window (Qt is imported only now)."""
    from kidscare_llm.gui import main as gui_main

    return gui_main(_load_params(args), local=args.local, transport=args.transport,
                    lang=args.lang, node_name=args.node_name, wait_s=args.wait)


def cmd_params(args) -> int:
    """Print the parameters as YAML (the packaged config/kidscare.yaml) or Markdown."""
    if args.markdown:
        print(settings.render_markdown(args.node), end='')
    else:
        print(settings.render_yaml(), end='')
    return 0


def cmd_doctor(args) -> int:
    """Check ROS 2, discovery, the Pythons, llama.cpp, the model and the data dir."""
    from kidscare_llm import doctor

    return doctor.main(args.params_file, settings.parse_overrides(args.param),
                       args.discovery_range)


def cmd_console(args) -> int:
    """Run the caregiver console (or set its password): kidscare_llm/console/command.py."""
    from kidscare_llm.console.command import run

    return run(args)


def cmd_memory(args) -> int:
    """List, edit or delete a child's memory items: kidscare_llm/memory_command.py."""
    from kidscare_llm.memory_command import run

    return run(args)


COMMANDS = {'chat': cmd_chat, 'node': cmd_node, 'say': cmd_say, 'ingest': cmd_ingest,
            'params': cmd_params, 'download-model': cmd_download_model, 'gui': cmd_gui,
            'doctor': cmd_doctor, 'console': cmd_console, 'memory': cmd_memory}


def _session_line(ok: bool, message: str) -> str:
    """Turn ~/reset_session's JSON answer into a line for people (prose if it is not JSON)."""
    try:
        done = json.loads(message)
        return f"new session {done['session']} for {done['user']}" if ok else message
    except (ValueError, KeyError, TypeError):
        return message


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the kidscare-llm console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')
    try:
        return COMMANDS[args.command](args)
    except KidscareError as exc:
        print(f'kidscare-llm {args.command}: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
