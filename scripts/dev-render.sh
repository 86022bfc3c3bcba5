#!/usr/bin/env bash
# Render template/ for one variant, for working on the template's crates.
#   scripts/dev-render.sh [model] [backend] [onnx]     (defaults: cnn cpu true)
# Prints the rendered project's path. Edit files under template/, never the rendered copy:
# it is deleted and rendered again on every call (set DEV_RENDER_DIR to render elsewhere). Build it with the shared target directory
#   CARGO_TARGET_DIR=/tmp/ccdev/target cargo test
set -euo pipefail
model=${1:-cnn}
backend=${2:-cpu}
onnx=${3:-true}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${DEV_RENDER_DIR:-/tmp/ccdev}/$model-$backend-$onnx
rm -rf "$out"
mkdir -p "$out"
CARGO_NAME=${CARGO_NAME:-dev} cargo generate --path "$root/template" --name my-mnist --silent \
  --vcs none --destination "$out" -d "backend=$backend" -d "model=$model" -d "onnx=$onnx" >/dev/null
echo "$out/my-mnist"
