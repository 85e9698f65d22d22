#!/usr/bin/env bash
# The hostile sweep (eval/hostile) against an older commit: what it catches there.
#   scripts/hostile_baseline.sh [REF]   -> reports/trust/hostile-baseline.{json,md}
# REF defaults to c9a4c52 (main before the input contract). The sweep's own modules, the
# contract module it takes its expectations from and the run_meta module one case uses to hold
# a lock are copied in (with a core.settings shim when REF predates core/); the CLI, API,
# readers and stream workers under test are REF's.
set -euo pipefail
REF=${1:-c9a4c52}
PY=${PY:-.venv/bin/python}
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
root=$(pwd)
data=$("$PY" -c "from core.settings import load_settings; print(load_settings().data_path())")
tmp=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$tmp/tree" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/tree" "$REF" >/dev/null
cp -r eval/hostile "$tmp/tree/eval/"
cp graph/run_meta.py "$tmp/tree/graph/"
mkdir -p "$tmp/tree/core"
cp core/contract.py "$tmp/tree/core/"
[ -f "$tmp/tree/core/__init__.py" ] || touch "$tmp/tree/core/__init__.py"
[ -f "$tmp/tree/core/settings.py" ] || echo "from configs.settings import *  # noqa: F403" > "$tmp/tree/core/settings.py"
cd "$tmp/tree"
ONCOGRAPH_DATA="$data" "$PY" -m eval.hostile --report-dir "$root/reports/trust" \
    --name hostile-baseline --label "$REF (before the input contract)" || true
