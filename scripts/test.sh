#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine with the .NET SDK: bootstrap (idempotent), build, test.
# Prints the per-assembly results and, as its last line, "N passed, N failed".
# The local cluster, its env file and the logs (test-results/) are under $RSCAPRET_DATA_DIR (default .data/; a relative
# path means the caller's current directory), the cluster on port $RSCAPRET_PG_PORT (default 55432): scripts/db.sh.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${RSCAPRET_DATA_DIR:-}" ]; then [[ $RSCAPRET_DATA_DIR = /* ]] || RSCAPRET_DATA_DIR="$PWD/$RSCAPRET_DATA_DIR"; export RSCAPRET_DATA_DIR; fi
DATA_DIR="${RSCAPRET_DATA_DIR:-$ROOT/.data}"
cd "$ROOT"
bash scripts/bootstrap.sh || { echo "bootstrap failed" >&2; echo "0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC1091
source "$DATA_DIR/db.env"
export RSCAPRET_DB

LOG_DIR="${RSCAPRET_DATA_DIR:-.data}/test-results"   # from the checkout: .data/test-results by default, as printed
rm -rf "$LOG_DIR"; mkdir -p "$LOG_DIR"
dotnet build RsCapRet.Pipeline.sln -c Release -v q -nologo > "$LOG_DIR/build.log" 2>&1
if [ $? -ne 0 ]; then
  grep -E ': error ' "$LOG_DIR/build.log" | sort -u >&2
  echo "build failed (see $LOG_DIR/build.log)" >&2; echo "0 passed, 1 failed"; exit 1
fi

# The formatting check counts as one test: the tree matches .editorconfig (dotnet format --verify-no-changes).
if dotnet format RsCapRet.Pipeline.sln --verify-no-changes > "$LOG_DIR/format.log" 2>&1; then
  format_passed=1; format_failed=0
else
  format_passed=0; format_failed=1
  echo "format check failed (dotnet format RsCapRet.Pipeline.sln applies it; all of it in $LOG_DIR/format.log):" >&2
  head -n 20 "$LOG_DIR/format.log" >&2
fi

# One test assembly at a time (-m:1): CrossHostWorkerTests changes the network interfaces, which browser tests in
# other assemblies see as net::ERR_NETWORK_CHANGED, and several assemblies at once overload 2 cores.
dotnet test RsCapRet.Pipeline.sln -c Release --no-build -nologo -m:1 2>&1 | tee "$LOG_DIR/test.log"
status=${PIPESTATUS[0]}

# Sum the per-assembly summary lines: "Passed!  - Failed: 0, Passed: 6, Skipped: 0, Total: 6, ..."
read -r passed failed skipped < <(grep -E '^(Passed|Failed)! +- Failed:' "$LOG_DIR/test.log" | awk -F'[:,]' '
  { f += $2; p += $4; s += $6 } END { printf "%d %d %d\n", p, f, s }')
passed=$((passed + format_passed)); failed=$((failed + format_failed))
assemblies=$(grep -cE '^(Passed|Failed)! +- Failed:' "$LOG_DIR/test.log")
expected=$(find tests -name '*.Tests.csproj' | wc -l)
if [ "$assemblies" -lt "$expected" ]; then
  echo "only $assemblies of $expected test assemblies reported results" >&2
  [ "$status" -ne 0 ] || status=1
  failed=$((failed + expected - assemblies))
fi
[ "$status" -eq 0 ] && [ "$failed" -gt 0 ] && status=1
if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
exit "$status"
