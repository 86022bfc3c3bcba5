#!/usr/bin/env bash
# Type-checks the cuda variant of the template with the `nccl` feature where there is no CUDA toolkit.
#
#   scripts/check-cuda.sh [MODEL]      (default: cnn)
#
# `cargo check` needs nvcc only in the build scripts of candle's kernels and of cudarc (its version),
# so a stand-in nvcc that reports CUDA 12.4 and writes empty outputs lets rustc check every path behind
# `cuda`, `distributed` and `nccl` against candle's and cudarc's real types. Nothing it builds can run:
# this catches type errors, not wrong numbers (scripts/gpu-check.sh runs the code on GPUs).
# CHECK_DIR (default ${TMPDIR:-/tmp}/candlecutter-cuda-check) holds the project, the stand-in and,
# unless CARGO_TARGET_DIR is set, the target folder. Needs cargo-generate and the package registry.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-cnn}"
dir="$(realpath -m "${CHECK_DIR:-${TMPDIR:-/tmp}/candlecutter-cuda-check}")"
command -v cargo-generate >/dev/null || { echo "cargo-generate is not installed: cargo install cargo-generate --version 0.23.7 --locked" >&2; exit 1; }

rm -rf "$dir/check-$model" && mkdir -p "$dir/bin"
CARGO_NAME="${CARGO_NAME:-cuda-check}" cargo generate --path "$root/template" --name "check-$model" --silent \
  --vcs none --destination "$dir" -d backend=cuda -d "model=$model" -d onnx=true >/dev/null

cat >"$dir/bin/nvcc" <<'NVCC'
#!/usr/bin/env bash
# scripts/check-cuda.sh's stand-in for nvcc: empty PTX, objects and archives, and a version line.
if [[ " $* " == *" --version "* ]]; then
  printf 'nvcc: NVIDIA (R) Cuda compiler driver\nCopyright (c) 2005-2024 NVIDIA Corporation\nBuilt on (stand-in)\n'
  printf 'Cuda compilation tools, release 12.4, V12.4.131\nBuild (stand-in)\n'
  exit 0
fi
out="" outdir="" prev="" ptx=0 inputs=()
for arg in "$@"; do
  case "$prev" in -o) out="$arg" ;; --output-directory | -odir) outdir="$arg" ;; esac
  case "$arg" in -o=* | --output-file=*) out="${arg#*=}" ;; --ptx | -ptx) ptx=1 ;; *.cu) inputs+=("$arg") ;; esac
  prev="$arg"
done
if [[ -n "$out" ]]; then
  mkdir -p "$(dirname "$out")"
  if [[ "$out" == *.a ]]; then rm -f "$out" && ar rcs "$out"; else : >"$out"; fi
fi
if [[ -n "$outdir" ]]; then
  mkdir -p "$outdir"
  for input in "${inputs[@]}"; do
    name="${input##*/}"
    if ((ptx)); then : >"$outdir/${name%.cu}.ptx"; else : >"$outdir/${name%.cu}.o"; fi
  done
fi
NVCC
chmod +x "$dir/bin/nvcc"

cd "$dir/check-$model"
PATH="$dir/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$dir/target}" \
  cargo check --workspace --all-targets --features nccl
echo "check-cuda: the $model project type-checks with --features nccl (cuda + distributed); nothing was run"
