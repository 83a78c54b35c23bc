"""`kidscare-llm doctor`: check the environment a user runs the robot in; say what to fix.

ROS 2 distro, RMW, the DDS discovery range of this shell against the node's, the Pythons of
the venv and of ROS 2, the llama.cpp build (CPU or GPU) and its threads, the model file and the
data dir. Plain Python: rclpy is probed in a subprocess (a ROS 2 built for another Python can
crash the process that imports it), everything else with find_spec, files and variables.
"""

from dataclasses import dataclass
import importlib.util
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import textwrap
from typing import List, Mapping, Optional

OK, NOTE, FIX = 'ok', 'note', 'fix'
ROS_ROOT = Path('/opt/ros')
# What a launch through chat.launch.py uses unless discovery_range:= says otherwise.
LAUNCH_RANGE = 'LOCALHOST'
RANGES = ('LOCALHOST', 'SUBNET', 'OFF', 'SYSTEM_DEFAULT')
LOCALHOST_ONLY_DISTROS = ('foxy', 'galactic', 'humble')  # before ROS_AUTOMATIC_DISCOVERY_RANGE
# The binary releases' default (Humble, Jazzy); a ROS 2 built from source may default to
# another (RMW_IMPLEMENTATION at its build): probe_rmw asks rclpy which one it loads.
DEFAULT_RMW = 'rmw_fastrtps_cpp'


@dataclass(frozen=True)
class Finding:
    """One line of the report: ok, note or fix; what was checked; what was found or to do."""

    level: str
    topic: str
    text: str


def export_line(scope: str, distro: Optional[str]) -> str:
    """Return the shell line that sets discovery to scope for this distro."""
    if distro in LOCALHOST_ONLY_DISTROS:
        return f'export ROS_LOCALHOST_ONLY={1 if scope == "LOCALHOST" else 0}'
    return f'export ROS_AUTOMATIC_DISCOVERY_RANGE={scope}'


def shell_range(env: Mapping[str, str]) -> str:
    """Return the discovery range ROS 2 tools (and rclpy nodes) started from env use."""
    scope = env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '').strip().upper()
    if env.get('ROS_DISTRO') not in LOCALHOST_ONLY_DISTROS and scope in RANGES \
            and scope != 'SYSTEM_DEFAULT':
        return scope
    return 'LOCALHOST' if env.get('ROS_LOCALHOST_ONLY', '').strip() == '1' else 'SUBNET'


def node_range(transport: str, env: Mapping[str, str]) -> str:
    """Return the discovery range a node on transport ('rclpy' or 'dds') uses under env.

    rclpy nodes follow the rmw (SUBNET unless set); plain DDS keeps LOCALHOST unless set, as
    transport/dds_discovery.py does.
    """
    if transport == 'rclpy':
        return shell_range(env)
    scope = env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '').strip().upper()
    if scope in RANGES and scope != 'SYSTEM_DEFAULT':
        return scope
    return 'SUBNET' if env.get('ROS_LOCALHOST_ONLY', '').strip() == '0' else 'LOCALHOST'


def discovery_hint(transport: str, env: Mapping[str, str] = os.environ) -> str:
    """Return the node's start-up line about discovery: its range, what a shell must export."""
    scope = node_range(transport, env)
    line = f'DDS discovery range {scope}'
    if scope == 'SUBNET':
        return line + ' (other computers on this network can find this node)'
    set_in_env = env.get('ROS_AUTOMATIC_DISCOVERY_RANGE') or env.get('ROS_LOCALHOST_ONLY')
    why = '' if set_in_env else ' (ROS 2 itself defaults to SUBNET)'
    return (f'{line}{why}: ROS 2 tools in another shell (ros2 topic, ros2 param) find this node '
            f'reliably only with the same range there: '
            f'{export_line(scope, env.get("ROS_DISTRO"))}; `kidscare-llm doctor` checks a shell')


def ros_prefix(env: Mapping[str, str], ros_root: Path = ROS_ROOT) -> Path:
    """Return the ROS 2 install holding rclpy: from AMENT_PREFIX_PATH, else /opt/ros/<distro>."""
    for entry in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if entry and (Path(entry) / 'share' / 'rclpy').is_dir():
            return Path(entry)
    return ros_root / env.get('ROS_DISTRO', '')


def ros_pythons(prefix: Path) -> List[str]:
    """Return the Python versions a ROS 2 install was built for ('3.12'), from lib/python3.X."""
    return sorted(m.group(1) for p in prefix.glob('lib/python3.*')
                  if (m := re.fullmatch(r'python(3\.\d+)', p.name)))


def check_ros(env: Mapping[str, str], ros_root: Path = ROS_ROOT) -> List[Finding]:
    """Report the ROS 2 distro: sourced, installed but not sourced, or absent."""
    distro = env.get('ROS_DISTRO')
    installed = sorted(p.name for p in ros_root.glob('*') if (p / 'setup.bash').is_file()) \
        if ros_root.is_dir() else []
    if distro:
        return [Finding(OK, 'ROS 2', f'{distro} sourced ({ros_prefix(env, ros_root)})')]
    if installed:
        return [Finding(NOTE, 'ROS 2', f'{", ".join(installed)} installed but not sourced: '
                        f'source {ros_root / installed[-1]}/setup.bash to run the rclpy '
                        'transport, ros2 launch and the ROS tests; without it nodes run over '
                        'plain DDS')]
    return [Finding(NOTE, 'ROS 2', 'not installed: nodes run over plain DDS (cyclonedds) with '
                    'ROS 2 wire names; ROS 2 nodes on rmw_cyclonedds_cpp talk to them')]


def probe_rclpy(python: str = sys.executable, timeout: float = 30.0) -> Optional[str]:
    """Import rclpy in a child process; return None when it works, else the last error line."""
    try:
        done = subprocess.run([python, '-c', 'import rclpy, rclpy.node'], capture_output=True,
                              text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f'exit code {done.returncode}'


def check_python(env: Mapping[str, str], ros_root: Path = ROS_ROOT,
                 rclpy_error=probe_rclpy) -> List[Finding]:
    """Compare this Python with ROS 2's; check rclpy imports here (the rclpy transport)."""
    this = f'{sys.version_info[0]}.{sys.version_info[1]}'
    venv = Path(sys.prefix) / 'pyvenv.cfg'
    system_site = venv.is_file() and re.search(
        r'include-system-site-packages\s*=\s*true', venv.read_text(), re.I) is not None
    where = f'Python {this} ({sys.executable}' + (
        ', venv with system site-packages)' if system_site else ')')
    distro = env.get('ROS_DISTRO')
    if not distro:
        return [Finding(OK, 'Python', where)]
    prefix = ros_prefix(env, ros_root)
    wanted = ros_pythons(prefix)
    if not wanted:
        return [Finding(NOTE, 'Python', f'{where}; no lib/python3.* under {prefix}: which Python '
                        f'ROS 2 {distro} uses is unknown')]
    if this not in wanted:
        return [Finding(FIX, 'Python', f'{where}, but ROS 2 {distro} is built for Python '
                        f'{"/".join(wanted)}: rclpy cannot load here and colcon-installed '
                        'entry points run the other Python. Rebuild the venv on the ROS '
                        'Python: rm -rf .venv && bash scripts/setup.sh --ros')]
    found = [Finding(OK, 'Python', f'{where}; ROS 2 {distro} uses the same')]
    if venv.is_file() and not system_site:
        found.append(Finding(NOTE, 'Python', 'the venv does not see the system site-packages '
                             '(python3-lark and the other apt packages ROS 2 needs): '
                             'bash scripts/setup.sh --ros builds it with them'))
    if importlib.util.find_spec('rclpy') is None:
        found.append(Finding(FIX, 'rclpy', "not on this Python's path: source "
                             f'{prefix}/setup.bash'))
    else:
        error = rclpy_error()
        found.append(Finding(OK, 'rclpy', 'imports: nodes use the rclpy transport') if error
                     is None else Finding(FIX, 'rclpy', f'does not import here ({error}): '
                                          'bash scripts/setup.sh --ros'))
    return found


def probe_rmw(python: str = sys.executable, timeout: float = 30.0) -> Optional[str]:
    """Return the RMW rclpy loads when RMW_IMPLEMENTATION is unset (its build's default).

    Asked in a child process, as probe_rclpy does; None when rclpy does not answer there.
    """
    env = {k: v for k, v in os.environ.items() if k != 'RMW_IMPLEMENTATION'}
    code = 'import rclpy; print(rclpy.get_rmw_implementation_identifier())'
    try:
        done = subprocess.run([python, '-c', code], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    return lines[-1] if done.returncode == 0 and lines and lines[-1].startswith('rmw_') \
        else None


def check_rmw(env: Mapping[str, str], transport: str,
              default_rmw=probe_rmw) -> List[Finding]:
    """Report the RMW; plain DDS only meets ROS 2 nodes running rmw_cyclonedds_cpp.

    Without RMW_IMPLEMENTATION the RMW is the default of the ROS 2 in use: asked of rclpy
    when it imports here (a source build may default to Cyclone), else the releases' default.
    """
    if not env.get('ROS_DISTRO'):
        return []
    rmw = env.get('RMW_IMPLEMENTATION')
    text = rmw
    prefixes = [p for p in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    if rmw and prefixes and not any(
            (Path(p) / 'share/ament_index/resource_index/rmw_typesupport' / rmw).is_file()
            for p in prefixes):
        return [Finding(FIX, 'RMW', f'RMW_IMPLEMENTATION={rmw}, which this ROS 2 does not '
                        f'have: apt install ros-{env["ROS_DISTRO"]}-{rmw.replace("_", "-")}, '
                        'or unset RMW_IMPLEMENTATION')]
    if not rmw:
        built = default_rmw() if transport == 'rclpy' else None
        rmw = built or DEFAULT_RMW
        text = f'{rmw} (' + ("this ROS 2's default" if built else
                             'the default of the ROS 2 releases') + ')'
    if transport == 'dds' and rmw != 'rmw_cyclonedds_cpp':
        return [Finding(FIX, 'RMW', f'{text}, but without rclpy the node speaks plain DDS '
                        '(Cyclone): ROS 2 tools here see it only on rmw_cyclonedds_cpp: '
                        'export RMW_IMPLEMENTATION=rmw_cyclonedds_cpp (apt install '
                        f'ros-{env["ROS_DISTRO"]}-rmw-cyclonedds-cpp)')]
    return [Finding(OK, 'RMW', text)]


def check_discovery(env: Mapping[str, str], transport: str,
                    launch_range: str = LAUNCH_RANGE) -> List[Finding]:
    """Compare this shell's discovery range with the node's (launched, and kidscare-llm node)."""
    distro = env.get('ROS_DISTRO')
    direct = node_range(transport, env)
    if not distro:
        unset = not (env.get('ROS_AUTOMATIC_DISCOVERY_RANGE') or env.get('ROS_LOCALHOST_ONLY'))
        return [Finding(OK, 'discovery', f'{direct} for the plain-DDS nodes and tools started '
                        'from this shell' + (' (unset: this computer only; export '
                                             'ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET reaches the '
                                             "robot's other computers)" if unset else ''))]
    shell = shell_range(env)
    launched = launch_range.upper()
    found = []
    if shell != launched:
        found.append(Finding(FIX, 'discovery', f'this shell discovers on {shell}, ros2 launch '
                             f'kidscare_llm chat.launch.py on {launched}: ros2 param/topic here '
                             'find the node only some of the time. '
                             f'{export_line(launched, distro)} (or launch with '
                             f'discovery_range:={shell})'))
    else:
        found.append(Finding(OK, 'discovery', f'this shell and the launched node: {shell}'))
    if direct != shell:
        found.append(Finding(NOTE, 'discovery', f'`kidscare-llm node` ({transport}) here would '
                             f'use {direct}: {export_line(shell, distro)} before starting it'))
    domain = env.get('ROS_DOMAIN_ID', '0').strip() or '0'
    if not domain.isdigit() or int(domain) > 232:
        found.append(Finding(FIX, 'discovery', f'ROS_DOMAIN_ID={domain} is not a domain id '
                             '(0-101 is safe everywhere)'))
    return found


def check_llama() -> List[Finding]:
    """Report the llama.cpp build (CPU or GPU) and the threads the default rule picks."""
    if importlib.util.find_spec('llama_cpp') is None:
        return [Finding(FIX, 'llama.cpp', 'llama-cpp-python is not installed: bash '
                        'scripts/setup.sh (or --cuda)')]
    import llama_cpp

    from kidscare_llm.core.llm.llama_cpp import resolve_threads, usable_cores
    info = llama_cpp.llama_print_system_info().decode('utf-8', 'replace')
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    backend = next((b for b in ('CUDA', 'Metal', 'Vulkan', 'HIP', 'SYCL') if b in info),
                   'GPU') if gpu else 'CPU'
    decode, batch = resolve_threads(0, 0)
    found = [Finding(OK, 'llama.cpp', f'llama-cpp-python {llama_cpp.__version__}, {backend} '
                     f'build; default threads: {decode} decode, {batch} prompt '
                     f'({usable_cores()} usable cores; model.n_threads sets them)')]
    if not gpu and shutil.which('nvidia-smi'):
        found.append(Finding(NOTE, 'llama.cpp', 'an NVIDIA GPU is present but llama.cpp is a CPU '
                             'build: bash scripts/setup.sh --cuda'))
    return found


def check_files(params) -> List[Finding]:
    """Report the model file the chat node would load and the data dir."""
    from kidscare_llm.core import paths
    from kidscare_llm.core.errors import KidscareError
    from kidscare_llm.core.llm.models import resolve_chat_model

    found = []
    try:
        data = paths.data_dir(params['data_dir'])
        free = shutil.disk_usage(data).free / 2**30
        found.append(Finding(OK if free > 6 else NOTE, 'data dir', f'{data} (writable, '
                             f'{free:.1f} GB free' + (')' if free > 6 else
                                                      '; the Korean 8B model needs 5 GB)')))
    except KidscareError as exc:
        return [Finding(FIX, 'data dir', str(exc))]
    if params['llm.backend'] != 'llama_cpp':
        return found + [Finding(OK, 'model', f'{params["llm.backend"]} server at '
                                f'{params["llm.base_url"]}')]
    try:
        choice = resolve_chat_model(params['model.path'], params['model.repo'],
                                    params['model.file'], False, data / 'models')
    except KidscareError as exc:
        return found + [Finding(FIX, 'model', str(exc))]
    packaged = choice.reason.startswith('packaged')
    found.append(Finding(NOTE if packaged else OK, 'model', f'{choice.reason}: {choice.path}'))
    return found


def diagnose(params=None, params_error: str = '', env: Mapping[str, str] = os.environ,
             launch_range: str = LAUNCH_RANGE) -> List[Finding]:
    """Run every check; params are the chat node's (None: they did not load)."""
    from kidscare_llm import transport

    kind = 'rclpy' if transport.rclpy_available() and env.get('ROS_DISTRO') else 'dds'
    found = check_ros(env) + check_python(env) + check_rmw(env, kind) + \
        check_discovery(env, kind, launch_range) + check_llama()
    if params is None:
        return found + [Finding(FIX, 'parameters', params_error)]
    return found + check_files(params)


def report(findings: List[Finding], columns: int = 100) -> str:
    """Render the findings, wrapped under their topic, and a closing line saying what to fix."""
    width = max(len(f.topic) for f in findings)
    indent = ' ' * (width + 8)
    lines = [textwrap.fill(f'{f.level:4s}  {f.topic:{width}s}  {f.text}', columns,
                           subsequent_indent=indent, break_on_hyphens=False,
                           break_long_words=False) for f in findings]
    fixes = sum(f.level == FIX for f in findings)
    lines.append(f'{fixes} thing{"s" if fixes != 1 else ""} to fix (the "fix" lines)' if fixes
                 else 'nothing to fix')
    return '\n'.join(lines)


def main(params_file=None, overrides=None, launch_range: str = LAUNCH_RANGE) -> int:
    """Print the report; return 1 when something needs fixing, else 0."""
    from kidscare_llm.core import paths, settings
    from kidscare_llm.core.errors import KidscareError

    try:
        params, error = settings.load(settings.CHAT_NODE, params_file or
                                      paths.default_params_file(), overrides or {}), ''
    except KidscareError as exc:
        params, error = None, str(exc)
    findings = diagnose(params, error, launch_range=launch_range)
    print(report(findings))
    return 1 if any(f.level == FIX for f in findings) else 0
