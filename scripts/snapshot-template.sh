#!/usr/bin/env bash
# At a release: snapshot template/ into generator/releases/<version>.template.gz, so that every later
# candlecutter carries it and `candlecutter update` can re-render it offline as a project's base.
# Usage: bash scripts/snapshot-template.sh   (after bumping the workspace version and stamping)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/stamp-template.sh
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' template/.candlecutter.toml.liquid | head -1)"
out="generator/releases/$version.template.gz"
[[ ! -e "$out" ]] || { echo "error: $out exists; a release's snapshot never changes (bump the version first)" >&2; exit 1; }
cargo run --quiet --offline -p candlecutter -- template snapshot template --out "$out"
echo "commit $out with the release"
