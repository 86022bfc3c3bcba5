#!/usr/bin/env bash
# Regenerate template/Cargo.lock.liquid: resolve the generated workspace's dependencies (for the
# rust-version in template/Cargo.toml.liquid) and make the project's own entry a placeholder.
# Run it after changing any dependency in the template's manifests; the test matrix checks that
# building a generated project neither adds nor changes a locked version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
project=$(DEV_RENDER_DIR=$scratch "$root/scripts/dev-render.sh" cnn cuda true)
rm -f "$root/template/Cargo.lock.liquid"
(cd "$project" && rm -f Cargo.lock && cargo generate-lockfile)
sed 's/^name = "my-mnist"$/name = "{{project-name}}"/' "$project/Cargo.lock" >"$root/template/Cargo.lock.liquid"
grep -q '{{project-name}}' "$root/template/Cargo.lock.liquid"
echo "wrote template/Cargo.lock.liquid ($(grep -c '^name = ' "$root/template/Cargo.lock.liquid") packages)"
