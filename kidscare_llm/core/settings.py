"""Reading parameters: the table (core/params.py), then parameter files, then overrides.

Every value is converted to its parameter's type and checked against its range or choices, so
a bad value stops a node at start-up with one clear line instead of failing deep inside
llama.cpp or Chroma. Also renders the table as config/kidscare.yaml and as Markdown (docs).
"""

from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

from kidscare_llm.core.errors import ConfigError
from kidscare_llm.core.params import (CHAT_NODE, Param, PARAMS, STT_NODE,  # noqa: F401
                                      TTS_NODE)


def check_limits(name: str, value: Any, node: Optional[str] = None) -> None:
    """Raise ConfigError when a value is outside its parameter's range or choices."""
    param = _find(name, node)
    if param is None:
        return
    if param.choices and value not in param.choices:
        raise ConfigError(f'{name}: {value!r} is not one of ' + ', '.join(param.choices))
    low, high = param.low, param.high
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f'{low if low is not None else "-inf"}..{high if high is not None else "inf"}'
        raise ConfigError(f'{name}: {value!r} is out of range ({bounds}); fix it in the '
                          'params file or the -p override')


def _find(name: str, node: Optional[str] = None) -> Optional[Param]:
    """Return the parameter of that name (in one node's table, or the first node's that has it)."""
    for table_node, table in PARAMS.items():
        if node in (None, table_node):
            for p in table:
                if p.name == name:
                    return p
    return None


def params_for(node: str) -> Tuple[Param, ...]:
    """Return the parameter table of one node, or raise ConfigError for an unknown node."""
    try:
        return PARAMS[node]
    except KeyError:
        raise ConfigError(f'no parameters are declared for node {node!r}') from None


def defaults(node: str) -> Dict[str, Any]:
    """Return {name: default} for one node."""
    return {p.name: p.default for p in params_for(node)}


def coerce(param: Param, value: Any) -> Any:
    """Convert a value (from YAML or a 'name=value' override) to the parameter's type."""
    kind = type(param.default)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() in ('true', '1', 'yes', 'on'):
                return True
            if text.lower() in ('false', '0', 'no', 'off'):
                return False
            raise ConfigError(f'{param.name}: expected true or false, got {value!r}')
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f'{param.name}: expected {kind.__name__}, got {value!r}') from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f'{param.name}: expected {kind.__name__}, got {value!r}')
    return value


def _flatten(tree: Mapping, prefix: str = '') -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def read_params_file(path: Path, node: str) -> Dict[str, Any]:
    """Read one node's section of a ROS 2 parameter file, flattened to dotted names."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding='utf-8-sig')) or {}
    except OSError as exc:
        raise ConfigError(f'cannot read parameter file {path}: {exc.strerror}') from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f'parameter file {path} is not valid YAML: {exc}') from None
    section = None
    for key in (node, f'/{node}', '/**', '**'):
        if isinstance(doc.get(key), Mapping):
            section = doc[key].get('ros__parameters', {})
            break
    if section is None:
        return {}
    return _flatten(section)


def load(node: str, params_file: Union[None, Path, Sequence[Path]] = None,
         overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Return the node's parameters: defaults, then each file in order, then overrides.

    Every name is checked against the table and every value converted to its type.
    """
    table = {p.name: p for p in params_for(node)}
    values = defaults(node)
    files = [params_file] if isinstance(params_file, (str, Path)) else list(params_file or [])
    layers = [read_params_file(f, node) for f in files] + [dict(overrides or {})]
    for layer in layers:
        for name, value in layer.items():
            if name not in table:
                raise ConfigError(f'unknown parameter {name!r} for {node}; known: '
                                  + ', '.join(sorted(table)))
            values[name] = coerce(table[name], value)
            check_limits(name, values[name], node)
    return values


def parse_overrides(items: Iterable[str]) -> Dict[str, str]:
    """Parse 'name=value' strings (as given to -p on the command line)."""
    out: Dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not name.strip():
            raise ConfigError(f'expected name=value, got {item!r}')
        out[name.strip()] = value
    return out


def _yaml_scalar(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return "''" if value == '' else json.dumps(value, ensure_ascii=False)
    return repr(value)


def render_yaml() -> str:
    """Render every node's parameters as a ROS 2 parameter file, descriptions as comments."""
    lines = ['# kidscare_llm parameters: every parameter of every node, with its default.',
             '# Generated from kidscare_llm/core/params.py by `kidscare-llm params --yaml`;',
             '# copy this file and pass it as params_file to change values; [live]: ros2 param',
             '# set applies it to the running node (rclpy); every other value needs a restart.']
    for node, table in PARAMS.items():
        lines += [f'{node}:', '  ros__parameters:']
        opened: Tuple[str, ...] = ()
        for p in table:
            *groups, leaf = p.name.split('.')
            common = 0
            while common < min(len(opened), len(groups)) and opened[common] == groups[common]:
                common += 1
            for depth in range(common, len(groups)):
                lines.append('    ' + '  ' * depth + f'{groups[depth]}:')
            opened = tuple(groups)
            indent = '    ' + '  ' * len(groups)
            notes = ' '.join(n for n in (f'({_bounds(p)})' if _bounds(p) else '',
                                         '[live]' if p.live else '') if n)
            lines.append(f'{indent}# {p.description}' + (f' {notes}' if notes else ''))
            lines.append(f'{indent}{leaf}: {_yaml_scalar(p.default)}')
    return '\n'.join(lines) + '\n'


def _bounds(p: Param) -> str:
    if p.choices:
        return ', '.join(p.choices)
    if p.low is None and p.high is None:
        return ''
    return f'{p.low if p.low is not None else ""}..{p.high if p.high is not None else ""}'


def render_markdown(node: str) -> str:
    """Render one node's parameters as a Markdown table (docs/parameters.md)."""
    rows = ['| parameter | default | range | at run time | meaning |',
            '| --- | --- | --- | --- | --- |']
    for p in params_for(node):
        rows.append(f'| `{p.name}` | `{_yaml_scalar(p.default)}` | {_bounds(p)} | '
                    f'{"live" if p.live else "restart"} | {p.description} |')
    return '\n'.join(rows) + '\n'
