#!/usr/bin/env bash
# Runs every test: unit tests first (fast feedback), then integration tests against real components.
# Node 20's test runner takes no globs, so the files are listed here.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
mapfile -t integration < <(find test/integration -name '*.test.ts' | sort)
node --import tsx --test --test-reporter=spec "${unit[@]}" "${integration[@]}" "$@"
