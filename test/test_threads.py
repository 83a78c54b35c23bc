"""The thread default: usable physical cores (affinity, SMT siblings, cgroup quota), minus one."""

from pathlib import Path

import pytest

from kidscare_llm.core.llm.llama_cpp import resolve_threads, usable_cores


def fake_cpus(root: Path, cores):
    """Write a /sys/devices/system/cpu tree: cores[i] = (package, core) of logical CPU i."""
    for cpu, (package, core) in enumerate(cores):
        topology = root / f'cpu{cpu}' / 'topology'
        topology.mkdir(parents=True)
        (topology / 'physical_package_id').write_text(f'{package}\n')
        (topology / 'core_id').write_text(f'{core}\n')
    return root


@pytest.fixture
def all_cpus(monkeypatch):
    """Let this process run on logical CPUs 0-7 whatever the machine has."""
    monkeypatch.setattr('os.sched_getaffinity', lambda _pid: set(range(8)), raising=False)


def test_smt_siblings_count_once(tmp_path, all_cpus):
    sys_dir = fake_cpus(tmp_path / 'cpu', [(0, c % 4) for c in range(8)])  # 4 cores, 2 threads
    assert usable_cores(sys_dir, tmp_path / 'no-cgroup') == 4


def test_two_sockets_are_told_apart(tmp_path, all_cpus):
    sys_dir = fake_cpus(tmp_path / 'cpu', [(c // 4, c % 4) for c in range(8)])
    assert usable_cores(sys_dir, tmp_path / 'no-cgroup') == 8


def test_a_cgroup_quota_caps_the_count(tmp_path, all_cpus):
    sys_dir = fake_cpus(tmp_path / 'cpu', [(0, c) for c in range(8)])
    cpu_max = tmp_path / 'cpu.max'
    cpu_max.write_text('200000 100000\n')  # a container given 2 CPUs
    assert usable_cores(sys_dir, cpu_max) == 2
    cpu_max.write_text('max 100000\n')
    assert usable_cores(sys_dir, cpu_max) == 8
    cpu_max.write_text('50000 100000\n')  # half a CPU: still one thread
    assert usable_cores(sys_dir, cpu_max) == 1


def test_no_topology_counts_logical_cpus(tmp_path, all_cpus):
    assert usable_cores(tmp_path / 'missing', tmp_path / 'no-cgroup') == 8


def test_this_machine_has_at_least_one_core():
    assert usable_cores() >= 1


@pytest.mark.parametrize('cores, expected', [(1, (1, 1)), (2, (1, 1)), (4, (3, 3)),
                                             (16, (15, 15))])
def test_default_leaves_one_core_to_the_neighbours(cores, expected):
    assert resolve_threads(0, 0, cores) == expected


def test_explicit_values_win():
    assert resolve_threads(3, 0, 16) == (3, 3)
    assert resolve_threads(2, 6, 16) == (2, 6)
    assert resolve_threads(0, 4, 2) == (1, 4)
