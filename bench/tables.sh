#!/usr/bin/env bash
# The `csv` data type's loader against pandas, on one machine in one run: a generated mlp
# project's `bench --data` on a table of ROWS x COLS numeric features and a regression target
# (reading, fitting the encoding and encoding both splits, then training steps fed by it),
# alternating with pandas' `read_csv` of the same file, REPEATS times each; medians.
#   bash bench/tables.sh [--rows N] [--cols N] [--repeats N]
# Environment: BENCH_VENV (a virtualenv, pandas installed into it if missing), BENCH_WORK,
# BENCH_TARGET_DIR, as bench/run.sh. Prints the figures; appends nothing.
set -euo pipefail
rows=1000000 cols=20 repeats=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --cols) cols=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
work="${BENCH_WORK:-${TMPDIR:-/tmp}/candlecutter-bench}"
target_dir="${BENCH_TARGET_DIR:-$work/target}"
venv="${BENCH_VENV:-$HOME/.cache/candlecutter/bench-venv}"
mkdir -p "$work"

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import pandas" 2>/dev/null || "$venv/bin/python" -m pip install --quiet pandas numpy
python="$venv/bin/python"

table="$work/table-${rows}x${cols}.csv"
if [ ! -f "$table" ]; then
  echo "writing $table"
  "$python" - "$table" "$rows" "$cols" <<'PY'
import sys
import numpy as np
path, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.normal(size=(rows, cols)).astype(np.float64)
y = x @ rng.normal(size=cols) + 0.1 * rng.normal(size=rows)
header = ",".join([f"x{i}" for i in range(cols)] + ["y"])
np.savetxt(path, np.column_stack([x, y]), fmt="%.6f", delimiter=",", header=header, comments="")
PY
fi

project="$work/tables/my-tables"
if [ ! -d "$project" ]; then
  rm -rf "$work/tables"
  mkdir -p "$work/tables"
  CARGO_NAME=bench cargo generate --path "$root/template" --name my-tables --silent --vcs none \
    --destination "$work/tables" -d backend=cpu -d model=mlp -d onnx=false >/dev/null
fi
(cd "$project" && CARGO_TARGET_DIR="$target_dir" cargo build --release --quiet)
bin="$target_dir/release/my-tables"
data="{\"type\": \"csv\", \"args\": {\"train\": \"$table\", \"task\": \"regression\", \"target\": \"y\", \"batch_size\": 256}}"

ours=() theirs=() steps=()
for i in $(seq "$repeats"); do
  json=$(cd "$project" && "$bin" --set "data_loader=$data" --set loss=null --set metrics=null --set trainer.monitor=null \
    --set device=cpu bench --data --steps 200 --warmup 20 --json 2>/dev/null | tail -n 1)
  ours+=("$(echo "$json" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["load_seconds"])')")
  steps+=("$(echo "$json" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["train_samples_per_sec"])')")
  theirs+=("$("$python" -c "import time, pandas; t = time.perf_counter(); pandas.read_csv('$table'); print(time.perf_counter() - t)")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
bytes=$(stat -c %s "$table")
load=$(median "${ours[@]}") pandas=$(median "${theirs[@]}") train=$(median "${steps[@]}")
awk -v rows="$rows" -v cols="$cols" -v mb="$bytes" -v load="$load" -v pandas="$pandas" -v train="$train" -v n="$repeats" 'BEGIN {
  printf "table %d rows x %d columns (%.0f MB), medians of %d alternating runs, %s threads\n", rows, cols + 1, mb / 1e6, n, ENVIRON["RAYON_NUM_THREADS"] ? ENVIRON["RAYON_NUM_THREADS"] : "all"
  printf "  candle csv (read + fit + encode both splits): %.2f s  %.0f rows/s  %.0f MB/s\n", load, rows / load, mb / 1e6 / load
  printf "  pandas read_csv (reading alone):              %.2f s  %.0f rows/s  %.0f MB/s\n", pandas, rows / pandas, mb / 1e6 / pandas
  printf "  ratio pandas / candle: %.2fx; training fed by the table: %.0f samples/s at batch 256\n", pandas / load, train
}'
