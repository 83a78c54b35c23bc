#!/usr/bin/env bash
# Set kidscare_llm up on Debian 12 / Ubuntu 22.04+: apt packages, .venv/, pinned pip
# requirements, and llama-cpp-python built once and cached as a wheel (a re-run takes seconds).
#
#   bash scripts/setup.sh            CPU build
#   bash scripts/setup.sh --cuda     CUDA build (RTX 3060, Jetson with JetPack; needs nvcc)
#   bash scripts/setup.sh --no-apt   skip apt-get (you installed the packages yourself)
#   bash scripts/setup.sh --no-model skip the Korean 8B GGUF download (done when the hub answers)
#   bash scripts/setup.sh --ros      .venv on ROS 2's Python (/usr/bin/python3) with
#                                    --system-site-packages: rclpy, launch and colcon's entry
#                                    points share one interpreter (docs/robot.md)
#
# Environment: PYTHON (default python3), KIDSCARE_CACHE_DIR (default ~/.cache/kidscare_llm),
# CMAKE_ARGS (extra llama.cpp CMake flags), CUDACXX (nvcc path on Jetson).
set -euo pipefail
cd "$(dirname "$0")/.."

flavor=cpu
apt=1
model=1
ros=0
for arg in "$@"; do
  case "$arg" in
    --cuda) flavor=cuda ;;
    --no-apt) apt=0 ;;
    --no-model) model=0 ;;
    --ros) ros=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. Debian packages: a compiler and CMake for llama.cpp, venv support; espeak-ng (the offline
#    Korean voice) and PortAudio for voice; a Korean font and Qt's runtime libraries for the
#    chat window.
packages=(build-essential cmake git python3-venv python3-dev espeak-ng libportaudio2
          fonts-nanum libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && [ $apt = 1 ]; then
  sudo=''; [ "$(id -u)" = 0 ] || sudo=sudo
  say "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
# Debian's Chromium and its driver for the caregiver console's browser test and screenshots
# (no browser download); where apt has no such packages (Ubuntu's are snaps) that test skips.
if [ $apt = 1 ] && ! dpkg -s chromium chromium-driver >/dev/null 2>&1; then
  sudo=''; [ "$(id -u)" = 0 ] || sudo=sudo
  say "apt-get install chromium chromium-driver"
  [ ${#missing[@]} -gt 0 ] || $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null \
    || say "chromium not installed: the console's browser test will skip"
fi

# 2. The virtual environment. With --ros: on the Python ROS 2 was built for, seeing the system
#    site-packages (rclpy, launch, lark from apt), as the ROS 2 docs advise for pip-only packages.
venv_args=()
if [ $ros = 1 ]; then
  distro=${ROS_DISTRO:-$(ls /opt/ros 2>/dev/null | tail -1 || true)}
  if [ -z "$distro" ]; then
    echo "setup --ros: no ROS 2 here (install it under /opt/ros, or source its setup.bash)" >&2
    exit 1
  fi
  PYTHON=${PYTHON:-/usr/bin/python3}
  # the Python rclpy was built for: the sourced prefix holding rclpy (a source build too), or
  # /opt/ros/<distro>
  prefix=/opt/ros/$distro
  IFS=: read -ra prefixes <<< "${AMENT_PREFIX_PATH:-}"
  for p in "${prefixes[@]}"; do
    if [ -n "$p" ] && [ -d "$p/share/rclpy" ]; then prefix=$p; break; fi
  done
  want=$(ls -d "$prefix"/lib/python3.* 2>/dev/null | sed -n 's|.*/python||p' | head -1 || true)
  have=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  if [ -n "$want" ] && [ "$want" != "$have" ]; then
    echo "setup --ros: ROS 2 $distro is built for Python $want, $PYTHON is $have (set PYTHON)" >&2
    exit 1
  fi
  venv_args=(--system-site-packages)
  real='import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))'
  if [ -x .venv/bin/python ] && { ! grep -qiE 'include-system-site-packages *= *true' \
      .venv/pyvenv.cfg || [ "$(.venv/bin/python -c "$real")" != "$("$PYTHON" -c "$real")" ]; }
  then
    echo "setup --ros: .venv was made without ROS 2's Python ($PYTHON, $have) or without its" \
      "site-packages: remove it (rm -rf .venv) and run this again" >&2
    exit 1
  fi
  say "ROS 2 $distro: .venv on $PYTHON ($have) with the system site-packages"
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with ${PYTHON:-python3} ${venv_args[*]}"
  "${PYTHON:-python3}" -m venv "${venv_args[@]}" .venv
fi
touch .venv/COLCON_IGNORE  # colcon build in this folder must not look for packages in .venv
py=.venv/bin/python
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# 3. llama-cpp-python: build once per version/flavor/platform, then install the cached wheel.
version=$(sed -n 's/^llama-cpp-python==//p' requirements.txt)
pytag=$($py -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
cache=${KIDSCARE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kidscare_llm}
wheels="$cache/wheels/llama-cpp-python-$version-$flavor-$(uname -m)-$pytag"
stamp=.venv/.llama-cpp-python
if [ "$(cat $stamp 2>/dev/null)" != "$version-$flavor" ]; then
  if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    flags="-DGGML_NATIVE=OFF"  # a wheel that runs on any x86-64 / arm64 CPU, not just this one
    [ $flavor = cuda ] && flags="$flags -DGGML_CUDA=on"
    say "building llama-cpp-python $version ($flavor) once, about 5 minutes on 2 cores;"
    say "the wheel is cached in $wheels"
    mkdir -p "$wheels"
    CMAKE_ARGS="$flags ${CMAKE_ARGS:-}" $py -m pip wheel -q --no-deps --no-cache-dir \
      --disable-pip-version-check -w "$wheels" "llama-cpp-python==$version"
  fi
  "${pip[@]}" --force-reinstall --no-deps "$wheels"/*.whl
  echo "$version-$flavor" > $stamp
fi

# 4. Pinned requirements, the packaged models, and the package itself (editable). torch's CPU
# build lives on the PyTorch index: use it when reachable (else pip's own sources must have it).
extra=()
if $py -c 'import socket; socket.create_connection(("download.pytorch.org", 443), 3)' \
    2>/dev/null; then
  extra=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
say "installing pinned requirements"
"${pip[@]}" "${extra[@]}" -r requirements.txt -r requirements-dev.txt
"${pip[@]}" --no-deps -r requirements-models.txt
# PEP 660 editable install: pip without it (Debian 12's 23.0) runs `setup.py develop`, which
# setuptools >= 80 refuses for the [develop] section ament_python packages carry in setup.cfg
"${pip[@]}" --no-deps --use-pep517 -e .
$py -c 'import llama_cpp, cyclonedds, kidscare_llm' \
  && say "ready: .venv/bin/kidscare-llm (llama-cpp-python $version, $flavor)"
# The child-safety classifier and the conversation stage's cue and pattern models learn from
# data/safety once into the cache, so the first node start does not have to: n-grams alone (a
# checker without an embedder) and with the lines' e5 embeddings (the robot's default; builds
# the int8 e5 graph too, about three minutes).
say "training the child-safety models (once; cached in $cache)"
KIDSCARE_CACHE_DIR=$cache $py -c 'from kidscare_llm.core.safety.checker import SafetyChecker as S
from kidscare_llm.core.rag.embeddings import create_embedder
S.load().warm_up(); S.load(embedder=create_embedder("e5-int8")).warm_up()'

# 5. The default chat model, the Korean 8B Q4 GGUF (about 4.9 GB, once), when the hub answers.
# The node itself never goes online: without this file it runs the packaged SmolLM2 and says so.
if [ $model = 1 ] && $py -c 'from kidscare_llm.core.llm.models import hub_reachable as h; \
    exit(0 if h() else 1)' 2>/dev/null; then
  say "downloading the Korean 8B model (kidscare-llm download-model)"
  .venv/bin/kidscare-llm download-model || say "model download failed: the packaged model runs"
else
  say "Korean 8B model not downloaded (offline or --no-model): the packaged SmolLM2 runs"
fi
if [ $ros = 1 ] && ! $py -c 'import colcon_core' 2>/dev/null; then
  say "colcon is not importable in .venv: apt install python3-colcon-common-extensions," \
    "then build with: source .venv/bin/activate && python -m colcon build (docs/robot.md)"
fi
