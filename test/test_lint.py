"""Lint in the ament style: flake8 (99 columns, single quotes) and pep257 docstrings."""

import subprocess
import sys

import pytest

from conftest import ROOT

TARGETS = ['kidscare_llm', 'launch', 'test', 'bench', 'setup.py']


def test_flake8():
    try:
        from ament_flake8.main import main_with_errors
    except ImportError:
        proc = subprocess.run([sys.executable, '-m', 'flake8', *TARGETS], cwd=ROOT,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    else:
        rc, errors = main_with_errors(argv=[str(ROOT / t) for t in TARGETS])
        assert rc == 0, '\n'.join(errors)


def test_pep257():
    try:
        from ament_pep257.main import main
    except ImportError:
        proc = subprocess.run([sys.executable, '-m', 'pydocstyle', '--convention=pep257',
                               '--add-ignore=D100,D104,D105,D107,D203,D212,D404',
                               'kidscare_llm', 'launch', 'bench'],
                              cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    else:
        assert main(argv=[str(ROOT / t) for t in ('kidscare_llm', 'launch', 'bench')]) == 0


@pytest.mark.parametrize('module', ['kidscare_llm.cli', 'kidscare_llm.nodes.chat_node'])
def test_entry_points_import_without_ros(module):
    proc = subprocess.run([sys.executable, '-c', f'import {module}'], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
