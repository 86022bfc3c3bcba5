#!/usr/bin/env bash
# Data-parallel benchmark: one process with T threads, and with 1 thread, against T MPI ranks of one
# thread each, on this machine, training the real thing (`train` on MNIST-format data, validation and checkpoints
# included); then, on paper, what the gradients' all-reduce costs per step at N = 2, 8, 64 ranks.
#
# Usage: bash bench/distributed.sh [--models "mlp cnn convnext"] [--threads T] [--repeat R] [--epochs E]
#                                  [--no-append]
#
#   --models "..."  which models [default: "mlp cnn convnext"]
#   --threads T     threads of the one process, and ranks of the MPI run [default: all CPUs]
#   --repeat R      runs per side, alternating; the median is reported [default: 3]
#   --epochs E      epochs per run; the last epoch's training samples/s is what counts (the first
#                   one warms caches and the allocator) [default: 2]
#   --no-append     print the results without appending them to bench/RESULTS.md
#
# Environment: MNIST_DIR (IDX files, default ../shared/data/mnist beside this repository; the test set
# stands in for a missing training set), BENCH_WORK, BENCH_TARGET_DIR as for bench/run.sh.
# Needs cargo-generate, mpirun (Open MPI or MPICH), libclang, jq and awk.
set -euo pipefail
export LC_NUMERIC=C OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results="$root/bench/RESULTS.md"
work="${BENCH_WORK:-${TMPDIR:-/tmp}/candlecutter-bench}"
target_dir="${BENCH_TARGET_DIR:-$work/target}"
mnist="${MNIST_DIR:-$root/../shared/data/mnist}"
models=(mlp cnn convnext)
threads="$(nproc)"
repeat=3
epochs=2
append=1

die() { echo "error: $*" >&2; exit 1; }
while (($#)); do
    case "$1" in
        --models) read -ra models <<<"${2:?--models needs a value}"; shift 2 ;;
        --threads) threads="${2:?--threads needs a value}"; shift 2 ;;
        --repeat) repeat="${2:?--repeat needs a value}"; shift 2 ;;
        --epochs) epochs="${2:?--epochs needs a value}"; shift 2 ;;
        --no-append) append=0; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
for n in "$threads" "$repeat" "$epochs"; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "expected a positive integer, got '$n'"; done
((threads >= 2)) || die "--threads must be at least 2: it is also the number of ranks"
for tool in cargo cargo-generate mpirun jq awk; do command -v "$tool" >/dev/null || die "$tool is not installed (mpirun: apt-get install libopenmpi-dev openmpi-bin libclang-dev)"; done
ls "$mnist"/t10k-images-idx3-ubyte* >/dev/null 2>&1 || die "no MNIST IDX files in $mnist: set MNIST_DIR"

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The last epoch's training samples/s of the newest run in saved/.
last_epoch_rate() {
    local run; run="$(ls -d saved/*/* | tail -1)"
    awk -F, -v want=train 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $col["split"] == want { rate = $col["samples_per_sec"] } END { print rate }' "$run/metrics.csv"
}

# Trains once, as one process with all threads (`one`) or one thread (`single`), or as ranks
# (`ranks`); prints the samples/s.
train_once() {
    local how="$1" bin="$2" set=(--set trainer.epochs="$epochs" --set trainer.tensorboard=false --set device=cpu)
    rm -rf saved
    if [[ "$how" == one ]]; then
        RAYON_NUM_THREADS="$threads" "$bin" "${set[@]}" train >>train.log 2>&1
    elif [[ "$how" == single ]]; then
        RAYON_NUM_THREADS=1 "$bin" "${set[@]}" train >>train.log 2>&1
    else
        mpirun -np "$threads" -x RAYON_NUM_THREADS=1 "$bin" "${set[@]}" train >>train.log 2>&1
    fi || die "training failed ($how) in $PWD: see $PWD/train.log"
    last_epoch_rate
}

rows=()
paper=()
for model in "${models[@]}"; do
    dir="$work/dist-$model"
    rm -rf "$dir"
    CARGO_NAME="${CARGO_NAME:-bench}" cargo generate --path "$root/template" --name "dist-$model" --silent \
        --vcs none --destination "$work" -d backend=cpu -d model="$model" -d onnx=false >/dev/null
    (
        cd "$dir"
        echo "== $model: build (release, --features distributed)" >&2
        CARGO_TARGET_DIR="$target_dir" cargo build --release --features distributed >>build.log 2>&1 \
            || die "the build failed: see $dir/build.log"
        mkdir -p data
        for kind in images-idx3 labels-idx1; do
            cp "$mnist"/t10k-$kind-ubyte* data/
            if ls "$mnist"/train-$kind-ubyte* >/dev/null 2>&1; then
                cp "$mnist"/train-$kind-ubyte* data/
            else
                for f in "$mnist"/t10k-$kind-ubyte*; do cp "$f" "data/train-${f##*/t10k-}"; done
            fi
        done
    ) || exit 1
    bin="$target_dir/release/dist-$model"
    one=() single=() many=()
    for ((r = 1; r <= repeat; r++)); do
        one+=("$(cd "$dir" && train_once one "$bin")")
        single+=("$(cd "$dir" && train_once single "$bin")")
        many+=("$(cd "$dir" && train_once ranks "$bin")")
        echo "   $model run $r: 1 process x $threads threads ${one[-1]}, x 1 thread ${single[-1]}, $threads ranks x 1 thread ${many[-1]} samples/s" >&2
    done
    a="$(printf '%s\n' "${one[@]}" | median)" s="$(printf '%s\n' "${single[@]}" | median)" b="$(printf '%s\n' "${many[@]}" | median)"
    params="$(jq -r .parameters "$(ls -d "$dir"/saved/*/* | tail -1)/summary.json")"
    batch="$(jq -r .data_loader.args.batch_size "$dir/config.json")"
    rows+=("$(awk -v m="$model" -v p="$params" -v a="$a" -v s="$s" -v b="$b" -v t="$threads" \
        'BEGIN { printf "| %s | %d | %.0f | %.0f | %.0f | %.2fx | %.2fx |", m, p, a, s, b, b / a, b / (t * s) }')")
    # Ring all-reduce: each rank sends (and receives) 2 (N - 1) / N of the f32 gradients per step.
    for n in 2 8 64; do
        paper+=("$(awk -v p="$params" -v n="$n" -v m="$model" -v b="$b" -v batch="$batch" -v t="$threads" 'BEGIN {
            bytes = 2 * (n - 1) / n * 4 * p; t10 = bytes * 8 / 10e9 * 1000; t100 = bytes * 8 / 100e9 * 1000
            # The compute of one step of the global batch on N ranks of one core each, if it divides
            # perfectly: the T-rank step measured here, times T / N.
            step = 1000 * batch / b * t / n
            printf "| %s | %d | %.2f MB | %.3f ms | %.4f ms | %.2f ms |", m, n, bytes / 1e6, t10, t100, step }')")
    done
done

cpu="$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)"
mpi="$(mpirun --version 2>/dev/null | head -1)"
report="$(
    echo "## $(date -u '+%Y-%m-%d %H:%M') UTC, data parallel on one machine: 1 process x $threads threads vs $threads ranks x 1 thread ($cpu)"
    echo
    echo "\`bash bench/distributed.sh\`: \`train\` on the MNIST test set (9,000 training images, batch 64), $epochs epochs per run,"
    echo "the last epoch's training samples/s, median of $repeat alternating runs per side; $mpi over shared memory."
    echo
    echo "| model | parameters | 1 process x $threads threads | 1 process x 1 thread | $threads ranks x 1 thread | ranks / ($threads threads) | ranks / ($threads x 1 thread) |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Samples/s of training. On paper, the gradients' ring all-reduce (f32; each rank sends and receives"
    echo "2(N-1)/N of them per step, bandwidth only: add ~2(N-1) link latencies) against the compute of a step"
    echo "of the same global batch on N one-core ranks (the $threads-rank step here x $threads/N). Communication"
    echo "dominates once it takes longer than that (the all-reduce does not overlap the backward pass)."
    echo
    echo "| model | N ranks | sent per rank per step | at 10 Gbit/s | at 100 Gbit/s | compute per step |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${paper[@]}"
)"
echo
echo "$report"
if ((append)); then printf '\n%s\n' "$report" >>"$results"; echo "appended to $results" >&2; fi
