"""Rules of the layout: core is plain Python; heavy libraries are imported where wrapped."""

import ast
from pathlib import Path
import subprocess
import sys

import pytest

from conftest import ROOT
from kidscare_llm import transport

PACKAGE = ROOT / 'kidscare_llm'
ROS_OR_TRANSPORT = {'rclpy', 'std_msgs', 'std_srvs', 'rcl_interfaces', 'launch', 'launch_ros',
                    'cyclonedds'}
HEAVY = {'llama_cpp', 'cyclonedds', 'rclpy', 'huggingface_hub', 'chromadb',
         'sentence_transformers', 'faster_whisper', 'piper', 'kiwipiepy', 'torch'}


def imports(path: Path):
    """Yield (top-level module, is_module_level) for every import in a file."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split('.')[0], id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split('.')[0], id(node) in top


@pytest.mark.parametrize('path', sorted((PACKAGE / 'core').rglob('*.py')), ids=str)
def test_core_never_imports_ros_or_transports(path):
    assert not {m for m, _ in imports(path)} & ROS_OR_TRANSPORT


# The plain-DDS transport modules are cyclonedds's wrapper (its message types are module-level
# IDL classes); they are imported only when that transport is chosen (next test).
WRAPPERS = {'cyclonedds': PACKAGE / 'transport'}


@pytest.mark.parametrize('path', sorted(PACKAGE.rglob('*.py')), ids=str)
def test_heavy_libraries_are_not_imported_at_module_level(path):
    allowed = {lib for lib, folder in WRAPPERS.items()
               if path.parent == folder and path.name.startswith('dds')}
    assert not {m for m, top in imports(path) if top} & (HEAVY - allowed)


def test_the_dds_wrapper_loads_only_when_chosen():
    """Importing the package, the nodes and the CLI loads no cyclonedds."""
    code = ('import sys, kidscare_llm, kidscare_llm.transport, kidscare_llm.cli, '
            'kidscare_llm.nodes.chat_node, kidscare_llm.core.build; '
            'assert "cyclonedds" not in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_transport_selection(monkeypatch):
    monkeypatch.delenv('KIDSCARE_TRANSPORT', raising=False)
    assert transport.choose('dds') == 'dds'
    assert transport.choose() == ('rclpy' if transport.rclpy_available() else 'dds')
    monkeypatch.setenv('KIDSCARE_TRANSPORT', 'dds')
    assert transport.choose() == 'dds'
    with pytest.raises(transport.TransportError, match='unknown transport'):
        transport.choose('zmq')
    monkeypatch.setattr(transport, 'rclpy_available', lambda: False)
    assert transport.choose('auto') == 'dds'
    with pytest.raises(transport.TransportError, match='source your ROS 2 setup.bash'):
        transport.choose('rclpy')


def test_every_package_folder_is_installed():
    """setup.py's find_packages() must see every folder of modules (no namespace packages)."""
    from setuptools import find_packages
    found = set(find_packages(str(ROOT), exclude=['test']))
    parents = {f.parent for f in PACKAGE.rglob('*.py')}
    folders = {'.'.join(p.relative_to(ROOT).parts) for p in parents}
    assert folders <= found
