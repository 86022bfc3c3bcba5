#!/usr/bin/env bash
# Full-MNIST parity benchmark: the generated project's cnn against PyTorch's same Net (examples/mnist), both
# trained with the project's default settings on all 60,000 training digits and scored on the 10,000 test
# digits: per-epoch seconds (training only) and test accuracy, side by side, alternating per seed.
#
# Usage: bash bench/mnist_parity.sh --data DIR [--epochs E] [--seeds "1 2 3"] [--threads T]
#                                   [--torch-init torch|candle] [--no-torch] [--no-append]
#
#   --data DIR        folder with the four MNIST files, plain or .gz (e.g. ../shared/data/mnist-full)
#   --epochs E        epochs per run [default: 3]
#   --seeds "..."     one run per side per seed, alternating [default: "1 2 3"]
#   --threads T       threads for both sides [default: all CPUs]
#   --torch-init I    PyTorch's own initialisation (torch), or candle-nn's (candle), for experiments
#   --no-torch        the Rust side only
#   --no-append       print the results without appending them to bench/RESULTS.md
#
# Environment: BENCH_VENV (a virtualenv with torch; bench/run.sh creates it), BENCH_WORK, BENCH_TARGET_DIR
# (as for bench/run.sh: the project is generated as $BENCH_WORK/bench-parity and shares the target folder).
#
# The settings are config.json's (AdamW lr 1e-3 and weight decay 0.01, batch 64, constant learning rate,
# dropout 0.25 / 0.5, normalisation 0.1307 / 0.3081) with `validation_split` 0 and `monitor` "off", so both
# sides train on the same 60,000 digits; bench/mnist_parity.py is the PyTorch side.
set -euo pipefail
export LC_NUMERIC=C

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results="$root/bench/RESULTS.md"
work="${BENCH_WORK:-${TMPDIR:-/tmp}/candlecutter-bench}"
target_dir="${BENCH_TARGET_DIR:-$work/target}"
venv="${BENCH_VENV:-$HOME/.cache/candlecutter/bench-venv}"
project="$work/bench-parity"

data=""
epochs=3
seeds=(1 2 3)
threads="$(nproc)"
torch_init=torch
use_torch=1
append=1

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }
need_value() { (($# >= 2)) || die "$1 needs a value"; }

while (($#)); do
    case "$1" in
        --data) need_value "$@"; data="$2"; shift 2 ;;
        --epochs) need_value "$@"; epochs="$2"; shift 2 ;;
        --seeds) need_value "$@"; read -ra seeds <<<"$2"; shift 2 ;;
        --threads) need_value "$@"; threads="$2"; shift 2 ;;
        --torch-init) need_value "$@"; torch_init="$2"; shift 2 ;;
        --no-torch) use_torch=0; shift ;;
        --no-append) append=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
done
[[ -n "$data" ]] || die "--data is required: a folder with the four MNIST files (the full set: ../shared/data/mnist-full)"
data="$(cd "$data" 2>/dev/null && pwd)" || die "--data: no folder '$data'"
for stem in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [[ -e "$data/$stem" || -e "$data/$stem.gz" ]] || die "--data $data has no $stem[.gz]; it needs the four MNIST files"
done
[[ "$epochs" =~ ^[1-9][0-9]*$ ]] || die "--epochs must be a positive integer, got '$epochs'"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$threads'"
((${#seeds[@]})) || die "--seeds is empty"
for seed in "${seeds[@]}"; do [[ "$seed" =~ ^[0-9]+$ ]] || die "--seeds: '$seed' is not a whole number"; done
[[ "$torch_init" == torch || "$torch_init" == candle ]] || die "--torch-init is torch or candle, got '$torch_init'"
for tool in cargo cargo-generate jq awk; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
if ((use_torch)); then
    "$venv/bin/python" -c 'import torch' 2>/dev/null \
        || die "no torch in $venv: run bash bench/run.sh once (it creates the venv), set BENCH_VENV, or pass --no-torch"
fi

mkdir -p "$work"
rm -rf "$project"
CARGO_NAME="${CARGO_NAME:-bench}" cargo generate --path "$root/template" --name bench-parity --silent \
    --vcs none --destination "$work" -d backend=cpu -d model=cnn -d onnx=false >/dev/null \
    || die "cargo generate failed"
log "building $project (release; log in $work/parity-build.log)"
(cd "$project" && CARGO_TARGET_DIR="$target_dir" cargo build --release) >"$work/parity-build.log" 2>&1 \
    || { tail -n 30 "$work/parity-build.log" >&2; die "cargo build --release failed"; }
mkdir -p "$project/data"
ln -sf "$data"/*-ubyte* "$project/data/"
binary="$target_dir/release/bench-parity"

# One Rust run: prints "seed s1 s2 ... accuracy" (per-epoch training seconds, then the test accuracy).
ours() {
    local seed="$1" run checkpoint accuracy
    (cd "$project" && RAYON_NUM_THREADS="$threads" "$binary" train \
        --set "seed=$seed" --set "trainer.epochs=$epochs" --set data_loader.args.validation_split=0 \
        --set 'trainer.monitor="off"' --set trainer.early_stop=0) >"$work/parity-train.log" 2>&1 \
        || { tail -n 20 "$work/parity-train.log" >&2; die "training failed (log: $work/parity-train.log)"; }
    run="$(ls -d "$project"/saved/bench-parity/*/ | sort | tail -n 1)"
    checkpoint="$(ls "$run"checkpoint-epoch*.safetensors | sort -V | tail -n 1)"
    accuracy="$(cd "$project" && RAYON_NUM_THREADS="$threads" "$binary" evaluate --checkpoint "$checkpoint" --json \
        | tail -n 1 | jq -r .accuracy)"
    awk -F, -v seed="$seed" -v acc="$accuracy" '$2 == "train" { s = s " " sprintf("%.1f", $6) } END { print seed s " " acc }' \
        "$run/metrics.csv"
}

# One PyTorch run, in the same format.
theirs() {
    "$venv/bin/python" "$root/bench/mnist_parity.py" --data "$data" --epochs "$epochs" --seed "$1" \
        --threads "$threads" --init "$torch_init" --json 2>>"$work/parity-torch.log" \
        | tail -n 1 | jq -r '[.seed] + (.epoch_seconds | map(. * 10 | round / 10)) + [.test_accuracy] | map(tostring) | join(" ")'
}

rows_ours=() rows_torch=()
for seed in "${seeds[@]}"; do
    log "seed $seed: candle"
    rows_ours+=("$(ours "$seed")")
    if ((use_torch)); then
        log "seed $seed: PyTorch"
        rows_torch+=("$(theirs "$seed")")
    fi
done

# Of rows "seed s1 .. sE accuracy": the median epoch's seconds, and the mean accuracy.
median_epoch() {
    printf '%s\n' "$@" | awk '{ for (i = 2; i < NF; i++) print $i }' | sort -g \
        | awk '{ v[NR] = $1 } END { printf "%.1f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
mean_accuracy() { printf '%s\n' "$@" | awk '{ a += $NF; n++ } END { printf "%.4f", a / n }'; }

section="$(
    printf '## %s, full-MNIST parity, %s threads\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$threads"
    printf -- '- CPU: %s, %s cores\n' "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)"
    printf -- '- repository commit: %s\n' "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
    printf -- '- cnn, %s epochs on 60,000 digits, batch 64, AdamW 1e-3 / 0.01, scored on the 10,000 test digits; ' "$epochs"
    printf 'PyTorch %s, its initialisation: %s\n\n' \
        "$( ((use_torch)) && "$venv/bin/python" -c 'import torch; print(torch.__version__)' || echo n/a)" "$torch_init"
    printf '| side | seed | seconds per epoch | test accuracy |\n|---|---|---|---|\n'
    for row in "${rows_ours[@]}"; do read -r s rest <<<"$row"; printf '| candle | %s | %s | %s |\n' "$s" "${rest% *}" "${rest##* }"; done
    for row in "${rows_torch[@]}"; do read -r s rest <<<"$row"; printf '| PyTorch | %s | %s | %s |\n' "$s" "${rest% *}" "${rest##* }"; done
)"
med_ours="$(median_epoch "${rows_ours[@]}")" acc_ours="$(mean_accuracy "${rows_ours[@]}")"
summary="candle: median epoch ${med_ours}s, mean test accuracy $acc_ours"
if ((use_torch)); then
    med_torch="$(median_epoch "${rows_torch[@]}")" acc_torch="$(mean_accuracy "${rows_torch[@]}")"
    summary="$summary; PyTorch: median epoch ${med_torch}s, mean test accuracy $acc_torch"
    summary="$summary; epoch-time ratio (PyTorch / candle, above 1: candle faster) $(awk -v a="$med_torch" -v b="$med_ours" 'BEGIN { printf "%.2f", a / b }')×"
    summary="$summary; accuracy difference (candle - PyTorch) $(awk -v a="$acc_ours" -v b="$acc_torch" 'BEGIN { printf "%+.2f", 100 * (a - b) }') pp"
fi
section="$section"$'\n\n'"$summary"
printf '%s\n' "$section"
if ((append)); then
    printf '\n%s\n' "$section" >>"$results"
    log "appended to $results"
fi
