#!/usr/bin/env bash
# Record the template's version (the workspace's) and content hash in template/.candlecutter.toml.liquid.
# Run after every change to template/: generated projects record the hash, and `candlecutter update`
# finds the exact template a project came from by it (tests fail until the stamp is current).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo run --quiet --offline -p candlecutter -- template stamp template
