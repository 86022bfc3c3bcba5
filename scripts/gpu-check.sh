#!/usr/bin/env bash
# The CUDA check: every model of the template trains, exports and verifies on a real GPU.
#
#   scripts/gpu-check.sh prepare [DIR]   on a machine with the package registry: generate the cuda
#                                        variant of each model (onnx on) into DIR, vendor their crates,
#                                        and pack DIR into DIR.tar.xz for a machine without a registry
#   scripts/gpu-check.sh run [DIR]       on the GPU machine (nvcc + a GPU; no network needed): build
#                                        each project offline, train one epoch on MNIST-format data,
#                                        evaluate, export + verify ONNX, run `bench` (and the PyTorch
#                                        reference on the GPU when `python3 -c "import torch"` works),
#                                        then print one table
#   scripts/gpu-check.sh all [DIR]       both, on one machine that has everything
#
# `run` then trains the first model data-parallel, one rank per GPU with NCCL summing the gradients
# (`--features nccl`), against one GPU, when the machine has 2 or more GPUs, mpirun and libclang
# (MPI and NCCL cannot be installed there: nothing is downloaded); RANKS (default: every GPU, at most
# 8) sets how many.
#
# DIR defaults to ${TMPDIR:-/tmp}/candlecutter-gpu-check. Data: MNIST_DIR (default: ../shared/data/mnist
# beside this repository, else DIR/data) must hold t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz),
# and train-* files if you have them; without train-* the test set stands in for them (the loader still
# holds out its validation split, which is what the accuracy column reports). MODELS="mlp cnn convnext"
# narrows the models; CUDA_COMPUTE_CAP is passed through to candle's kernel build. GPU_CHECK_CPU=1 runs
# the same steps without the cuda feature on the CPU: a dry run of this script where there is no GPU.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command="${1:-}"
dir="$(realpath -m "${2:-${TMPDIR:-/tmp}/candlecutter-gpu-check}")"
read -r -a models <<<"${MODELS:-mlp cnn convnext}"

die() { echo "gpu-check: $*" >&2; exit 1; }
project() { echo "$dir/gpu-$1"; }

prepare() {
  command -v cargo-generate >/dev/null || die "cargo-generate is not installed: cargo install cargo-generate --version 0.23.7 --locked"
  rm -rf "$dir" && mkdir -p "$dir"
  local sync=()
  for model in "${models[@]}"; do
    CARGO_NAME="${CARGO_NAME:-gpu-check}" cargo generate --path "$root/template" --name "gpu-$model" --silent \
      --vcs none --destination "$dir" -d backend=cuda -d "model=$model" -d onnx=true >/dev/null
    # Resolve each lock now (the registry is reachable here) so the offline build changes nothing.
    cargo metadata --format-version 1 --manifest-path "$(project "$model")/Cargo.toml" >/dev/null
    sync+=(--sync "$(project "$model")/Cargo.toml")
  done
  # One vendor folder for all projects; each project's .cargo/config.toml points cargo at it.
  cargo vendor --quiet --versioned-dirs --respect-source-config "${sync[@]}" "$dir/vendor" >/dev/null
  for model in "${models[@]}"; do
    mkdir -p "$(project "$model")/.cargo"
    cat >"$(project "$model")/.cargo/config.toml" <<EOF
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "../vendor"
EOF
  done
  if [[ -d "$root/bench" ]]; then cp -r "$root/bench" "$dir/bench"; fi
  cp "${BASH_SOURCE[0]}" "$dir/gpu-check.sh"
  # xz: the vendored crates are ~0.5 GB; xz packs them into about half of what gzip does.
  tar -C "$(dirname "$dir")" -cf - "$(basename "$dir")" | xz -T0 -6 >"$dir.tar.xz"
  echo "prepared $dir, packed as $dir.tar.xz ($(du -sh "$dir.tar.xz" | cut -f1)); on the GPU machine:"
  echo "  tar -xJf $(basename "$dir").tar.xz && bash $(basename "$dir")/gpu-check.sh run $(basename "$dir")"
}

# Copy MNIST-format files into a project's data/, the test set standing in for a missing train set.
stage_data() {
  local data="$1" source="${MNIST_DIR:-}"
  if [[ -z "$source" ]]; then
    for candidate in "$root/../shared/data/mnist" "$dir/data"; do
      [[ -d "$candidate" ]] && source="$candidate" && break
    done
  fi
  [[ -n "$source" && -d "$source" ]] || die "no MNIST data: set MNIST_DIR to a folder with the IDX files"
  mkdir -p "$data"
  local kind suffix
  for kind in images-idx3 labels-idx1; do
    for suffix in "" .gz; do
      local test="$source/t10k-$kind-ubyte$suffix" train="$source/train-$kind-ubyte$suffix"
      [[ -f "$test" ]] && cp "$test" "$data/"
      if [[ -f "$train" ]]; then cp "$train" "$data/"; elif [[ -f "$test" ]]; then cp "$test" "$data/train-$kind-ubyte$suffix"; fi
    done
  done
  ls "$data"/t10k-images-idx3-ubyte* >/dev/null 2>&1 || die "$source has no t10k-images-idx3-ubyte(.gz)"
}

# The value of KEY in the last JSON line of FILE.
json_field() { grep '^{' "$1" | tail -1 | python3 -c "import json,sys; print(json.load(sys.stdin).get('$2', 'n/a'))"; }

run() {
  local device=cuda features=()
  if [[ "${GPU_CHECK_CPU:-0}" == 1 ]]; then
    device=cpu features=(--no-default-features --features onnx)
    echo "GPU_CHECK_CPU=1: a dry run on the CPU, built without the cuda feature"
  else
    command -v nvcc >/dev/null || die "nvcc is not on the PATH: the cuda feature compiles candle's kernels with it"
    if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
  fi
  local rows=() log
  for model in "${models[@]}"; do
    local p; p="$(project "$model")"
    [[ -d "$p" ]] || die "$p is missing: run \`$0 prepare $dir\` first"
    log="$dir/$model.log"
    echo "== $model: build (offline), train 1 epoch, evaluate, export, bench; log: $log"
    (
      cd "$p"
      export CARGO_TARGET_DIR="$dir/target"
      stage_data data
      cargo build --release --offline "${features[@]}" >>"$log" 2>&1
      local bin="$CARGO_TARGET_DIR/release/gpu-$model"
      "$bin" --set device=$device --set trainer.epochs=1 --set trainer.tensorboard=false train >>"$log" 2>&1
      local run_dir; run_dir="$(ls -d saved/*/* | tail -1)"
      "$bin" --set device=$device evaluate --checkpoint "$run_dir/model_best.safetensors" --split val --json >"$dir/$model.eval.json" 2>>"$log"
      if "$bin" export --checkpoint "$run_dir/model_best.safetensors" >"$dir/$model.export.txt" 2>>"$log"; then
        echo "verified" >"$dir/$model.export.status"
      else
        echo "FAILED" >"$dir/$model.export.status"
      fi
      "$bin" --set device=$device bench --json >"$dir/$model.bench.json" 2>>"$log"
      "$bin" --set device=$device bench --eval --json >"$dir/$model.bench-eval.json" 2>>"$log"
    ) || { rows+=("| $model | failed | | | | see $log |"); continue; }
    local torch="n/a"
    if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null && [[ -f "$dir/bench/torch_reference.py" || -f "$root/bench/torch_reference.py" ]]; then
      local ref="$dir/bench/torch_reference.py"; [[ -f "$ref" ]] || ref="$root/bench/torch_reference.py"
      if python3 "$ref" --model "$model" --device cuda --json >"$dir/$model.torch.json" 2>>"$log"; then
        torch="$(json_field "$dir/$model.torch.json" samples_per_sec)"
      fi
    fi
    local train eval accuracy
    train="$(json_field "$dir/$model.bench.json" samples_per_sec)"
    eval="$(json_field "$dir/$model.bench-eval.json" samples_per_sec)"
    accuracy="$(json_field "$dir/$model.eval.json" accuracy)"
    rows+=("| $model | $(printf '%.0f' "$train") | $(printf '%.0f' "$eval") | $torch | $accuracy | $(cat "$dir/$model.export.status") |")
  done
  echo
  echo "| model | train samples/s (batch 64) | eval samples/s (batch 256) | PyTorch train samples/s | val accuracy (1 epoch) | ONNX export |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| data parallel | one epoch | val accuracy, 1 process | val accuracy, ranks | |"
  echo "|---|---|---|---|---|"
  distributed
}

seconds_since() { awk -v start="$1" -v now="$(date +%s%N)" 'BEGIN { print (now - start) / 1e9 }'; }

# One epoch of the first model on RANKS ranks (NCCL over the GPUs; MPI over the CPU for
# GPU_CHECK_CPU=1) against one process, and a row comparing them. The global batch is the same, so
# the two train the same function; GPU dropout masks differ per rank, so the accuracies are
# compared within a point, not bit for bit (tests/mpi.rs checks equality on the CPU).
distributed() {
  local model="${models[0]}" device=cuda features=(--features nccl) ranks="${RANKS:-}"
  local p log; p="$(project "$model")"; log="$dir/$model.distributed.log"
  if [[ "${GPU_CHECK_CPU:-0}" == 1 ]]; then
    device=cpu features=(--no-default-features --features onnx,distributed) ranks="${ranks:-2}"
  else
    local gpus; gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
    ranks="${ranks:-$(( gpus > 8 ? 8 : gpus ))}"
    if (( ranks < 2 )); then echo "| $model on ranks | skipped: ${gpus:-0} GPU here, NCCL needs one GPU per rank | | | |"; return; fi
  fi
  command -v mpirun >/dev/null || { echo "| $model on $ranks ranks | skipped: no mpirun on this machine | | | |"; return; }
  (
    cd "$p"
    export CARGO_TARGET_DIR="$dir/target-distributed" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    cargo build --release --offline "${features[@]}" >>"$log" 2>&1
    local bin="$CARGO_TARGET_DIR/release/gpu-$model" set=(--set device=$device --set trainer.epochs=1 --set trainer.tensorboard=false)
    local start one many
    start=$(date +%s%N); "$bin" "${set[@]}" train >>"$log" 2>&1; one=$(seconds_since "$start")
    "$bin" --set device=$device evaluate --checkpoint "$(ls -d saved/*/* | tail -1)/model_best.safetensors" --split val --json >"$dir/$model.one.json" 2>>"$log"
    local threads=(); [[ $device == cpu ]] && threads=(-x RAYON_NUM_THREADS=1)
    start=$(date +%s%N); mpirun -np "$ranks" "${threads[@]}" "$bin" "${set[@]}" train >>"$log" 2>&1; many=$(seconds_since "$start")
    "$bin" --set device=$device evaluate --checkpoint "$(ls -d saved/*/* | tail -1)/model_best.safetensors" --split val --json >"$dir/$model.ranks.json" 2>>"$log"
    local a b; a="$(json_field "$dir/$model.one.json" accuracy)"; b="$(json_field "$dir/$model.ranks.json" accuracy)"
    local verdict; verdict="$(python3 -c "print('agree' if abs($a - $b) <= 0.01 else 'DIFFER')")"
    printf '| %s on %s ranks | %.1f s on 1, %.1f s on %s | %s | %s | %s |\n' "$model" "$ranks" "$one" "$many" "$ranks" "$a" "$b" "$verdict"
  ) || echo "| $model on $ranks ranks | failed: see $log | | | |"
}

case "$command" in
  prepare) prepare ;;
  run) run ;;
  all) prepare && run ;;
  *) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
