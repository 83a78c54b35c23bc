"""`kidscare-llm doctor` and the node's discovery hint: what a user's shell is told to fix."""

import importlib.util
import subprocess
import sys

import pytest

from conftest import BIN
from kidscare_llm import doctor
from kidscare_llm.doctor import FIX, NOTE, OK

JAZZY = {'ROS_DISTRO': 'jazzy'}
HUMBLE = {'ROS_DISTRO': 'humble'}
THIS = f'{sys.version_info[0]}.{sys.version_info[1]}'


@pytest.mark.parametrize('env, expected', [
    (JAZZY, 'SUBNET'),
    ({**JAZZY, 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'localhost'}, 'LOCALHOST'),
    ({**JAZZY, 'ROS_LOCALHOST_ONLY': '1'}, 'LOCALHOST'),
    ({**JAZZY, 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SYSTEM_DEFAULT'}, 'SUBNET'),
    (HUMBLE, 'SUBNET'),
    ({**HUMBLE, 'ROS_LOCALHOST_ONLY': '1'}, 'LOCALHOST'),
    ({**HUMBLE, 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}, 'SUBNET'),  # Humble ignores it
])
def test_shell_range_follows_the_rmw(env, expected):
    assert doctor.shell_range(env) == expected
    assert doctor.node_range('rclpy', env) == expected


def test_plain_dds_keeps_localhost_unless_told():
    assert doctor.node_range('dds', {}) == 'LOCALHOST'
    assert doctor.node_range('dds', {'ROS_LOCALHOST_ONLY': '0'}) == 'SUBNET'
    assert doctor.node_range('dds', {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}) == 'SUBNET'


def test_discovery_hint_names_the_export_for_the_distro():
    hint = doctor.discovery_hint('dds', {})
    assert 'LOCALHOST' in hint and 'export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST' in hint
    assert 'defaults to SUBNET' in hint
    assert 'export ROS_LOCALHOST_ONLY=1' in doctor.discovery_hint(
        'rclpy', {**HUMBLE, 'ROS_LOCALHOST_ONLY': '1'})
    assert 'export' not in doctor.discovery_hint('rclpy', JAZZY)  # SUBNET: nothing to match


def test_a_shell_on_subnet_is_told_to_match_the_launch():
    found = doctor.check_discovery(JAZZY, 'rclpy')
    assert found[0].level == FIX
    assert 'export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST' in found[0].text
    assert 'export ROS_LOCALHOST_ONLY=1' in doctor.check_discovery(HUMBLE, 'rclpy')[0].text
    matched = {**JAZZY, 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    assert [f.level for f in doctor.check_discovery(matched, 'rclpy')] == [OK]
    assert doctor.check_discovery(JAZZY, 'rclpy', 'SUBNET')[0].level == OK
    bad_domain = {**matched, 'ROS_DOMAIN_ID': '999'}
    assert doctor.check_discovery(bad_domain, 'rclpy')[-1].level == FIX


def fake_ros(root, distro, python):
    """Make root/<distro> look like a ROS 2 install built for python ('3.12')."""
    prefix = root / distro
    (prefix / 'lib' / f'python{python}' / 'site-packages').mkdir(parents=True)
    (prefix / 'setup.bash').write_text('')
    return root


def test_another_python_than_ros_is_a_fix(tmp_path):
    other = '3.99'
    found = doctor.check_python(JAZZY, fake_ros(tmp_path, 'jazzy', other))
    assert found[0].level == FIX and 'scripts/setup.sh --ros' in found[0].text
    assert other in found[0].text


def test_the_same_python_as_ros_probes_rclpy(tmp_path, monkeypatch):
    root = fake_ros(tmp_path, 'jazzy', THIS)
    monkeypatch.setattr('importlib.util.find_spec', lambda name: object())
    found = doctor.check_python(JAZZY, root, rclpy_error=lambda: None)
    assert found[0].level == OK and found[-1].topic == 'rclpy' and found[-1].level == OK
    found = doctor.check_python(JAZZY, root, rclpy_error=lambda: 'ImportError: _rclpy')
    assert found[-1].level == FIX and '_rclpy' in found[-1].text


def test_ros_installed_but_not_sourced_is_a_note(tmp_path):
    found = doctor.check_ros({}, fake_ros(tmp_path, 'humble', '3.10'))
    assert found[0].level == NOTE and 'source' in found[0].text and 'humble' in found[0].text
    assert doctor.check_ros({}, tmp_path / 'none')[0].level == NOTE
    assert doctor.check_ros(JAZZY, tmp_path)[0].level == OK


def test_plain_dds_needs_cyclone_on_the_ros_side():
    assert doctor.check_rmw(JAZZY, 'dds')[0].level == FIX
    cyclone = {**JAZZY, 'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}
    assert doctor.check_rmw(cyclone, 'dds')[0].level == OK
    assert doctor.check_rmw(JAZZY, 'rclpy', default_rmw=lambda: None)[0].level == OK
    assert doctor.check_rmw({}, 'dds') == []


def test_the_default_rmw_is_the_one_this_ros_loads():
    found = doctor.check_rmw(JAZZY, 'rclpy', default_rmw=lambda: 'rmw_cyclonedds_cpp')
    assert found[0].text == "rmw_cyclonedds_cpp (this ROS 2's default)"
    found = doctor.check_rmw(JAZZY, 'rclpy', default_rmw=lambda: None)
    assert found[0].text.startswith(doctor.DEFAULT_RMW + ' (')
    env = {**JAZZY, 'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}
    assert doctor.check_rmw(env, 'rclpy', default_rmw=lambda: 1 / 0)[0].text == 'rmw_fastrtps_cpp'


def test_an_rmw_this_ros_does_not_have_is_a_fix(tmp_path):
    index = tmp_path / 'share/ament_index/resource_index/rmw_typesupport'
    index.mkdir(parents=True)
    (index / 'rmw_cyclonedds_cpp').write_text('')
    env = {**JAZZY, 'AMENT_PREFIX_PATH': str(tmp_path)}
    found = doctor.check_rmw({**env, 'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}, 'rclpy')
    assert found[0].level == FIX and 'ros-jazzy-rmw-fastrtps-cpp' in found[0].text
    found = doctor.check_rmw({**env, 'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}, 'rclpy')
    assert found[0].level == OK


@pytest.mark.skipif(importlib.util.find_spec('rclpy') is None,
                    reason='rclpy not importable: source a ROS 2 setup.bash')
def test_probe_rmw_asks_rclpy(monkeypatch):
    monkeypatch.setenv('RMW_IMPLEMENTATION', 'rmw_no_such_middleware')  # not the default
    assert (doctor.probe_rmw() or '').startswith('rmw_')
    assert doctor.probe_rmw() != 'rmw_no_such_middleware'
    assert doctor.probe_rmw(python='/nonexistent/python') is None


def test_report_counts_what_to_fix():
    text = doctor.report([doctor.Finding(OK, 'a', 'fine'), doctor.Finding(FIX, 'b', 'do x')])
    assert text.splitlines()[-1] == '1 thing to fix (the "fix" lines)'
    assert doctor.report([doctor.Finding(OK, 'a', 'fine')]).endswith('nothing to fix')


def test_a_missing_model_file_is_a_fix(data_dir, capsys):
    assert doctor.main(overrides={'model.path': str(data_dir / 'none.gguf')}) == 1
    out = capsys.readouterr().out
    assert 'model file not found' in out and 'fix' in out


def test_doctor_command_runs_here(data_dir):
    done = subprocess.run([str(BIN / 'kidscare-llm'), 'doctor'], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode <= 1, done.stderr[-2000:]
    for topic in ('ROS 2', 'Python', 'discovery', 'llama.cpp', 'data dir', 'model'):
        assert topic in done.stdout
    assert 'Traceback' not in done.stderr
