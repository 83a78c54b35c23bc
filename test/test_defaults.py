"""Defaults are written once, in core/params.py: no constructor may disagree with the table.

Every class in the package is read (not imported): a constructor argument or dataclass field
named like a parameter (its last part, e.g. `top_k` for rag.top_k, or the whole name with
underscores) must default to that parameter's default, or have no default at all. None and
defaults of another type (a tuple for a comma-separated string) mean "not given" and private
record classes hold what happened, not settings: neither is compared.
"""

import ast
from collections import defaultdict

import pytest

from conftest import ROOT
from kidscare_llm.core.params import PARAMS

TABLE = defaultdict(set)
for _table in PARAMS.values():
    for _p in _table:
        TABLE[_p.name.rsplit('.', 1)[-1]].add(_p.default)
        TABLE[_p.name.replace('.', '_')].add(_p.default)


def comparable(name, value):
    """Return True when value could be a setting of the parameter(s) called name."""
    kinds = {type(d) for d in TABLE.get(name, ())}
    if float in kinds:
        kinds.add(int)
    return type(value) in kinds


def constructor_defaults(path):
    """Yield (class name, argument, default) for literal defaults of __init__ and fields."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                and not n.name.startswith('_')):
        for item in cls.body:
            if isinstance(item, ast.FunctionDef) and item.name == '__init__':
                args = item.args.args + item.args.kwonlyargs
                defaults = [None] * (len(item.args.args) - len(item.args.defaults)) + \
                    list(item.args.defaults) + list(item.args.kw_defaults)
                pairs = zip((a.arg for a in args), defaults)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                pairs = [(item.target.id, item.value)]
            else:
                continue
            for name, node in pairs:
                if node is None:
                    continue
                try:
                    yield cls.name, name, ast.literal_eval(node)
                except ValueError:  # not a literal (a call, a name): nothing to compare
                    continue


CASES = [(str(p.relative_to(ROOT)), cls, name, value)
         for p in sorted((ROOT / 'kidscare_llm').rglob('*.py'))
         for cls, name, value in constructor_defaults(p) if comparable(name, value)]


@pytest.mark.parametrize('path, cls, name, value', CASES,
                         ids=[f'{c[1]}.{c[2]}' for c in CASES])
def test_constructor_default_agrees_with_the_parameter_table(path, cls, name, value):
    assert value in TABLE[name], (f'{path}: {cls}({name}={value!r}) but the parameter table '
                                  f'says {sorted(TABLE[name], key=repr)}')


def test_the_scan_sees_constructors():
    """The scan is not vacuous: the package has constructors with parameter-named defaults."""
    assert len(CASES) >= 10
