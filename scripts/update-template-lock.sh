#!/usr/bin/env bash
# Regenerate template/Cargo.lock.liquid: resolve the generated workspace's dependencies (for the
# rust-version in template/Cargo.toml.liquid) with ONNX export on and off, and merge the two lock
# files into one template: packages only the ONNX variant needs sit in `{% if onnx %}` blocks,
# and the project's own entry is a placeholder. Run it after changing any dependency of the
# template; the test matrix checks that building a generated project changes no locked version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rm -f "$root/template/Cargo.lock.liquid"
for onnx in true false; do
  project=$(DEV_RENDER_DIR=$scratch/$onnx "$root/scripts/dev-render.sh" cnn cuda "$onnx")
  (cd "$project" && rm -f Cargo.lock && cargo generate-lockfile --quiet)
  cp "$project/Cargo.lock" "$scratch/$onnx.lock"
done
python3 - "$scratch/true.lock" "$scratch/false.lock" "$root/template/Cargo.lock.liquid" <<'PY'
import re, sys

def entries(path):
    text = open(path).read()
    head, *blocks = text.split("\n[[package]]\n")
    parsed = {}
    for block in blocks:
        block = "[[package]]\n" + block.rstrip("\n") + "\n"
        name = re.search(r'^name = "(.*)"$', block, re.M).group(1)
        version = re.search(r'^version = "(.*)"$', block, re.M).group(1)
        if name == "my-mnist":
            block = block.replace('name = "my-mnist"', 'name = "{{project-name}}"')
        parsed[(name, version)] = block
    return head.rstrip("\n") + "\n", parsed

head, with_onnx = entries(sys.argv[1])
head_plain, without = entries(sys.argv[2])
assert head == head_plain, "the two lock files have different headers"
out = [head]
for key in sorted(set(with_onnx) | set(without)):
    a, b = with_onnx.get(key), without.get(key)
    if a == b:
        out.append("\n" + a)
    elif a and b:
        out.append("{% if onnx %}\n" + a + "{% else %}\n" + b + "{% endif %}")
    elif a:
        out.append("{% if onnx %}\n" + a + "{% endif %}")
    else:
        out.append("{% unless onnx %}\n" + b + "{% endunless %}")
open(sys.argv[3], "w").write("".join(out))
only_onnx = sorted(k[0] for k in set(with_onnx) - set(without))
print(f"wrote template/Cargo.lock.liquid: {len(with_onnx)} packages with onnx, {len(without)} without; "
      f"onnx-only: {', '.join(only_onnx) or 'none'}")
PY
