"""`kidscare-llm memory`: a parent lists, edits and deletes what the robot remembers of a child.

Works on the data dir's memory/ files directly, safely beside a running chat node: the node
notices another process's change before its next recall (SQLite's data_version, the file's
inode), so a forgotten item is never recalled again. Listing needs neither Kiwi nor the
embedder; editing loads both (a few seconds).
"""

import json


def add_arguments(parser) -> None:
    """Declare `memory list | forget | edit | clear | users` on the sub-command's parser."""
    sub = parser.add_subparsers(dest='action', required=True, metavar='ACTION')
    common = []
    for name, text in (('users', 'the children with memories'),
                       ('list', "a child's memory items (--history: replaced ones too)"),
                       ('forget', 'delete items by --id or --matching words, from disk'),
                       ('edit', "replace an item's words"),
                       ('clear', 'delete everything remembered of a child (asks first)')):
        action = sub.add_parser(name, help=text)
        action.add_argument('--params-file', metavar='FILE',
                            help='ROS 2 parameter file (default: the packaged kidscare.yaml)')
        action.add_argument('-p', '--param', action='append', default=[], metavar='NAME=VALUE',
                            help='override one parameter, e.g. -p data_dir=/srv/robot')
        if name != 'users':
            action.add_argument('--user', required=True, help='the child (user id)')
        common.append(action)
    sub.choices['list'].add_argument('--history', action='store_true',
                                     help='also the items later statements replaced')
    sub.choices['list'].add_argument('--json', action='store_true', help='one JSON per line')
    which = sub.choices['forget'].add_mutually_exclusive_group(required=True)
    which.add_argument('--id', help='the item id (from list)')
    which.add_argument('--matching', metavar='WORDS',
                       help='every item whose words contain these (history included)')
    sub.choices['edit'].add_argument('--id', required=True, help='the item id (from list)')
    sub.choices['edit'].add_argument('--text', required=True, help='the new words')
    sub.choices['clear'].add_argument('--yes', action='store_true', help='do not ask')


def _memory(args, with_models: bool):
    from kidscare_llm.core import paths, settings
    from kidscare_llm.core.memory.child_memory import ChildMemory

    params = settings.load(settings.CHAT_NODE, args.params_file or paths.default_params_file(),
                           settings.parse_overrides(args.param))
    embedder = analyzer = None
    if with_models:
        from kidscare_llm.core.rag.embeddings import create_embedder
        from kidscare_llm.core.rag.korean import KoreanAnalyzer

        embedder, analyzer = create_embedder(params['rag.embedder']), KoreanAnalyzer()
    return ChildMemory(paths.data_dir(params['data_dir']) / 'memory', embedder, analyzer)


def run(args) -> int:
    """Carry out one memory action; print what was done."""
    memory = _memory(args, with_models=args.action == 'edit')
    try:
        if args.action == 'users':
            for user in memory.users():
                print(f'{user}\t{len(memory.list(user))} items')
        elif args.action == 'list':
            for item in memory.list(args.user, history=args.history):
                if args.json:
                    print(json.dumps(item.to_dict(), ensure_ascii=False))
                else:
                    date = f' [{item.event_date}]' if item.event_date else ''
                    state = '' if item.status == 'active' else f' ({item.status})'
                    print(f'{item.id}  {item.said_on}  {item.kind:10}{date} {item.text}{state}')
        elif args.action == 'forget':
            if args.id:
                count = int(memory.forget(args.user, args.id))
            else:
                count = memory.forget_matching(args.user, args.matching)
            print(f'forgot {count} item(s) of {args.user}')
            return 0 if count else 1
        elif args.action == 'edit':
            item = memory.edit(args.user, args.id, args.text)
            print(f'{item.id}  {item.text}')
        elif args.action == 'clear':
            if not args.yes and input(f'delete everything remembered of {args.user}? '
                                      '[y/N] ').strip().lower() not in ('y', 'yes'):
                print('nothing deleted')
                return 1
            print(f'deleted {memory.clear(args.user)} item(s) of {args.user}')
        return 0
    finally:
        memory.close()
