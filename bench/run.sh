#!/usr/bin/env bash
# Training-speed benchmark: the generated project (candle, CPU) against PyTorch on the same machine.
#
# Usage: bash bench/run.sh [--models "mlp cnn convnext"] [--steps N] [--warmup W] [--threads T]
#                          [--repeat R] [--no-torch] [--no-append]
#
#   --models "..."  which models to generate and measure [default: "mlp cnn convnext"]
#   --steps N       timed steps per measurement [default: per model and mode, about 1-3 s of
#                   steps each: mlp 1500 / 2000 (train / eval), cnn 50 / 50, convnext 300 / 300]
#   --warmup W      untimed steps before them [default: 5]
#   --threads T     threads for both sides (RAYON_NUM_THREADS, torch.set_num_threads) [default: all CPUs]
#   --repeat R      runs per side and measurement, alternating; the median run is reported [default: 3]
#   --no-torch      candle numbers only; PyTorch columns and ratios read "n/a"
#   --no-append     print the results without appending them to bench/RESULTS.md
#
# Environment:
#   BENCH_VENV        virtualenv with torch, created if missing [default: ~/.cache/candlecutter/bench-venv]
#   BENCH_WORK        where the projects are generated [default: ${TMPDIR:-/tmp}/candlecutter-bench]
#   BENCH_TARGET_DIR  shared CARGO_TARGET_DIR [default: $BENCH_WORK/target]
#
# Per model it generates a project (backend=cpu, onnx=false) from this repository's template, builds it in
# release, then runs `bench --json` (training, batch 64) and `bench --eval --json` (inference, batch 256),
# and bench/torch_reference.py with the same flags. Needs cargo-generate, jq, awk, and python3 for PyTorch.
set -euo pipefail
export LC_NUMERIC=C  # a decimal point in printf, whatever the locale

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results="$root/bench/RESULTS.md"
work="${BENCH_WORK:-${TMPDIR:-/tmp}/candlecutter-bench}"
target_dir="${BENCH_TARGET_DIR:-$work/target}"
venv="${BENCH_VENV:-$HOME/.cache/candlecutter/bench-venv}"
build_log="$work/build.log"

readonly TRAIN_BATCH=64 EVAL_BATCH=256

models=(mlp cnn convnext)
steps=""
warmup=5
threads="$(nproc)"
use_torch=1
append=1
repeat=3

python=""        # the venv's python once torch imports, else empty
torch_version="n/a"
build_label=""   # "cold build" or "first build (target dir reused)"
build_s=""
rebuild_s=""
table=""
busy=0          # the most CPU time (percent) other work took just before a measurement

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }

need_value() { (($# >= 2)) || die "$1 needs a value"; }

parse_args() {
    while (($#)); do
        case "$1" in
            --models) need_value "$@"; read -ra models <<<"$2"; shift 2 ;;
            --steps) need_value "$@"; steps="$2"; shift 2 ;;
            --warmup) need_value "$@"; warmup="$2"; shift 2 ;;
            --threads) need_value "$@"; threads="$2"; shift 2 ;;
            --repeat) need_value "$@"; repeat="$2"; shift 2 ;;
            --no-torch) use_torch=0; shift ;;
            --no-append) append=0; shift ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown option '$1'" ;;
        esac
    done
    ((${#models[@]})) || die "--models is empty; give one or more of: mlp cnn convnext"
    local model
    for model in "${models[@]}"; do
        case "$model" in
            mlp | cnn | convnext) ;;
            *) die "unknown model '$model' in --models; choose from: mlp cnn convnext" ;;
        esac
    done
    [[ -z "$steps" || "$steps" =~ ^[1-9][0-9]*$ ]] || die "--steps must be a positive integer, got '$steps'"
    [[ "$repeat" =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer, got '$repeat'"
    [[ "$warmup" =~ ^[0-9]+$ ]] || die "--warmup must be a non-negative integer, got '$warmup'"
    [[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$threads'"
}

check_tools() {
    local tool
    for tool in cargo cargo-generate jq awk; do
        command -v "$tool" >/dev/null || die "$tool is not installed; see bench/README.md"
    done
}

# Sets $python and $torch_version if torch imports from the venv, installing it there if needed.
setup_torch() {
    ((use_torch)) || { log "--no-torch: candle numbers only"; return 0; }
    if [[ ! -x "$venv/bin/python" ]]; then
        command -v python3 >/dev/null || { log "warning: no python3; continuing without PyTorch"; return 0; }
        log "creating the virtualenv $venv"
        python3 -m venv "$venv" || { log "warning: could not create $venv; continuing without PyTorch"; return 0; }
    fi
    if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
        # numpy only silences torch's warning at import that it is missing.
        log "installing torch into $venv (the CPU-only wheel, else PyPI's, which brings CUDA libraries)"
        "$venv/bin/python" -m pip install --quiet --timeout 30 --retries 1 torch numpy \
                --index-url https://download.pytorch.org/whl/cpu \
            || "$venv/bin/python" -m pip install --quiet torch numpy \
            || { log "warning: could not install torch; continuing without PyTorch (ratios read n/a)"; return 0; }
    fi
    torch_version="$("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
    python="$venv/bin/python"
    log "PyTorch $torch_version from $venv"
}

project_dir() { printf '%s/bench-%s' "$work" "$1"; }

generate_project() {
    local model="$1" dir
    dir="$(project_dir "$model")"
    rm -rf "${dir:?}"
    CARGO_NAME="${CARGO_NAME:-bench}" cargo generate --path "$root/template" --name "bench-$model" --silent \
        --vcs none --destination "$work" -d backend=cpu -d model="$model" -d onnx=false >/dev/null \
        || die "cargo generate failed for model=$model"
}

# Builds a project in release; prints the seconds it took. The output goes to $build_log.
timed_build() {
    local dir="$1" start end
    start="$(date +%s.%N)"
    (cd "$dir" && CARGO_TARGET_DIR="$target_dir" cargo build --release) >>"$build_log" 2>&1 \
        || { tail -n 30 "$build_log" >&2; die "cargo build --release failed in $dir (full log: $build_log)"; }
    end="$(date +%s.%N)"
    awk -v start="$start" -v end="$end" 'BEGIN { printf "%.1f", end - start }'
}

# Builds the first project twice, timed: from the target dir as found, then after touching a model source.
build_first() {
    local model="${models[0]}" dir
    dir="$(project_dir "$model")"
    : >"$build_log"
    if [[ -d "$target_dir/release" ]]; then
        build_label="first build (target dir reused, not cold)"
    else
        build_label="cold build"
    fi
    log "building bench-$model in release, timed: $build_label (log: $build_log)"
    build_s="$(timed_build "$dir")"
    log "  ${build_s}s; rebuilding after touching model/src/lib.rs"
    touch "$dir/model/src/lib.rs"
    rebuild_s="$(timed_build "$dir")"
    log "  ${rebuild_s}s"
}

# The `bench` subcommand is newer than some checkouts of the template: say so before building the rest.
check_bench_subcommand() {
    local dir
    dir="$(project_dir "${models[0]}")"
    (cd "$dir" && CARGO_TARGET_DIR="$target_dir" cargo run --release --quiet -- bench --help) >/dev/null 2>&1 \
        || die "the generated project has no \`bench\` subcommand (\`cargo run --release -- bench --help\` fails in $dir); this template predates it"
}

build_rest() {
    local model
    for model in "${models[@]:1}"; do
        log "building bench-$model in release"
        log "  $(timed_build "$(project_dir "$model")")s"
    done
}

# Prints the JSON object on the last line of a command's stdout, or fails naming the command.
last_json_line() {
    local name="$1" out line
    shift
    out="$("$@")" || die "$name failed (exit $?)"
    line="$(tail -n 1 <<<"$out")"
    jq -e 'type == "object" and has("samples_per_sec")' <<<"$line" >/dev/null 2>&1 \
        || die "$name printed no JSON object on its last line (does the generated project have the \`bench\` subcommand?); its stdout ended with: $(tail -n 3 <<<"$out")"
    printf '%s' "$line"
}

# Warns when a side did not run with the thread count asked for, which would make the comparison unfair.
check_threads() {
    local name="$1" json="$2" used
    used="$(jq -r '.threads' <<<"$json")"
    [[ "$used" == "$threads" ]] || log "warning: $name ran with $used threads, not $threads"
}

# Timed steps for a model and mode: --steps, or enough for a measurement of about a second or more.
# 50 steps of the mlp's 0.6 ms inference step are a 30 ms window, which one scheduler hiccup on a
# shared machine moves by 10-20%.
steps_for() {
    if [[ -n "$steps" ]]; then printf '%s' "$steps"; return; fi
    case "$1 $2" in
        "mlp train") printf 1500 ;;
        "mlp eval") printf 2000 ;;
        "convnext train" | "convnext eval") printf 300 ;;
        *) printf 50 ;;
    esac
}

# Arguments shared by both sides for a model and mode.
mode_args() {
    local n
    n="$(steps_for "$1" "$2")"
    case "$2" in
        train) printf '%s\n' --steps "$n" --warmup "$warmup" --batch-size "$TRAIN_BATCH" --json ;;
        eval) printf '%s\n' --eval --steps "$n" --warmup "$warmup" --batch-size "$EVAL_BATCH" --json ;;
        *) die "unknown mode '$2'" ;;
    esac
}

run_candle() {
    local model="$1" mode="$2" args
    mapfile -t args < <(mode_args "$model" "$mode")
    (
        cd "$(project_dir "$model")"
        last_json_line "candle $model $mode" env RAYON_NUM_THREADS="$threads" CARGO_TARGET_DIR="$target_dir" \
            cargo run --release --quiet -- bench "${args[@]}"
    )
}

run_torch() {
    local model="$1" mode="$2" args
    [[ -n "$python" ]] || return 0
    mapfile -t args < <(mode_args "$model" "$mode")
    last_json_line "pytorch $model $mode" "$python" "$root/bench/torch_reference.py" --model "$model" \
        --threads "$threads" "${args[@]}"
}

# The run (a JSON line) with the median samples/s of those given.
median_run() {
    printf '%s\n' "$@" | jq -sc 'sort_by(.samples_per_sec) | .[(length - 1) / 2 | floor]'
}

# fmt DECIMALS VALUE: the value rounded, or n/a where there is none.
fmt() { if [[ -z "$2" || "$2" == null ]]; then printf 'n/a'; else printf "%.${1}f" "$2"; fi; }

# samples/s, p50 ms and peak RSS MB from one side's JSON, space-separated.
fields() { jq -r '"\(.samples_per_sec) \(.step_ms_p50) \(.peak_rss_mb)"' <<<"$1"; }

# One Markdown table row from the candle JSON and the PyTorch JSON (empty without PyTorch).
table_row() {
    local model="$1" mode="$2" c_sps c_p50 c_rss t_sps="" t_p50="" t_rss="" ratio="n/a"
    read -r c_sps c_p50 c_rss <<<"$(fields "$3")"
    if [[ -n "${4:-}" ]]; then
        read -r t_sps t_p50 t_rss <<<"$(fields "$4")"
        ratio="$(awk -v c="$c_sps" -v t="$t_sps" 'BEGIN { printf "%.2f", c / t }')×"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$model" "$mode" \
        "$(fmt 0 "$c_sps")" "$(fmt 0 "$t_sps")" "$ratio" "$(fmt 2 "$c_p50")" "$(fmt 2 "$t_p50")" \
        "$(fmt 0 "$c_rss")" "$(fmt 0 "$t_rss")"
}

# Percent of all CPU time spent busy over one second: other work skews the numbers, badly so when it
# competes with the benchmark's threads.
cpu_busy_percent() {
    local before after
    before="$(head -n 1 /proc/stat)"
    sleep 1
    after="$(head -n 1 /proc/stat)"
    # cpu user nice system idle iowait irq softirq steal ...; idle and iowait are not busy.
    awk -v a="$before" -v b="$after" 'BEGIN {
        split(a, x); split(b, y)
        for (i = 2; i <= 9; i++) total += y[i] - x[i]
        idle = y[5] - x[5] + y[6] - x[6]
        printf "%.0f", total ? 100 * (total - idle) / total : 0
    }'
}

measure_all() {
    local model mode candle torch now
    table="| model | mode | candle samples/s | PyTorch samples/s | ratio | candle p50 ms | PyTorch p50 ms | candle peak RSS MB | PyTorch peak RSS MB |
|---|---|---|---|---|---|---|---|---|"
    for model in "${models[@]}"; do
        for mode in train eval; do
            now="$(cpu_busy_percent)"
            if ((now > busy)); then busy="$now"; fi
            if ((now > 10)); then
                log "warning: the CPUs are ${now}% busy with other work; the numbers will be low and noisy"
            fi
            # Alternate the two sides `repeat` times and keep each side's median run: a single run
            # of either framework can be off by a factor when the machine hiccups.
            local candle_runs=() torch_runs=() r
            for ((r = 1; r <= repeat; r++)); do
                log "measuring $model $mode: candle (run $r of $repeat)"
                candle_runs+=("$(run_candle "$model" "$mode")")
                if [[ -n "$python" ]]; then
                    log "measuring $model $mode: PyTorch (run $r of $repeat)"
                    torch_runs+=("$(run_torch "$model" "$mode")")
                fi
            done
            candle="$(median_run "${candle_runs[@]}")"
            check_threads "candle $model $mode" "$candle"
            torch=""
            if [[ -n "$python" ]]; then
                torch="$(median_run "${torch_runs[@]}")"
                check_threads "pytorch $model $mode" "$torch"
            fi
            table+=$'\n'"$(table_row "$model" "$mode" "$candle" "$torch")"
        done
    done
}

# "mlp 1500 / 2000, cnn 50 / 50, ...": the timed steps of each model measured.
steps_list() {
    local model sep=""
    for model in "${models[@]}"; do
        printf '%s%s %s / %s' "$sep" "$model" "$(steps_for "$model" train)" "$(steps_for "$model" eval)"
        sep=", "
    done
}

cpu_model() {
    local cpu
    cpu="$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
    [[ -n "$cpu" ]] || cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
    printf '%s' "${cpu:-unknown CPU}"
}

machine_description() {
    local mem commit
    mem="$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null)"
    commit="$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
    cat <<EOF
- CPU: $(cpu_model), $(nproc --all) cores ($(nproc) available), $threads threads used
- memory: ${mem:-unknown}; CPUs busy with other work just before a measurement: at most ${busy}%
- $(rustc --version), PyTorch $torch_version
- repository commit: $commit
- timed steps (train / eval): $(steps_list) after $warmup warm-up steps; training at batch $TRAIN_BATCH, inference at batch $EVAL_BATCH;
  each side run $repeat times, alternating, and its median run reported
- $build_label of bench-${models[0]}: ${build_s}s; rebuild after touching model/src/lib.rs: ${rebuild_s}s
EOF
}

write_results_header() {
    cat >"$results" <<'EOF'
# Benchmark results

Training and inference speed of the generated project (candle, CPU backend) against the same models in
PyTorch (`bench/torch_reference.py`), one section per run of `bash bench/run.sh`, newest last. Both sides
run one after the other on the same machine with the same thread count; compare numbers within a section,
not across sections. The ratio is candle samples/s ÷ PyTorch samples/s (above 1: candle is faster).
To add a section, run `bash bench/run.sh` on a machine with nothing else running; see bench/README.md.
EOF
}

report() {
    local section
    section="$(printf '## %s\n\n%s\n\n%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC'), $(cpu_model), $threads threads" \
        "$(machine_description)" "$table")"
    printf '\n%s\n' "$section"
    if ((append)); then
        [[ -f "$results" ]] || write_results_header
        printf '\n%s\n' "$section" >>"$results"
        log "appended to $results"
    fi
}

main() {
    parse_args "$@"
    check_tools
    mkdir -p "$work"
    setup_torch
    local model
    for model in "${models[@]}"; do
        log "generating bench-$model in $work"
        generate_project "$model"
    done
    build_first
    check_bench_subcommand
    build_rest
    measure_all
    report
}

main "$@"
