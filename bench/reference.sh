#!/usr/bin/env bash
# The benchmark table of docs/benchmarks.md: every reference benchmark run twice in a row (bench/run, the product's environment),
# then `compare` on the two runs. Logs go to $RSCAPRET_DATA_DIR/bench/ (default .data/bench/): NAME-1.log, NAME-2.log and
# NAME-compare.log.
#   bench/reference.sh [NAME...]   (default: all; names as below)
# Run it on a quiet machine: nothing else should be using the cores (the load average is printed before and after).
# FRESH=1: each run is ROUNDS separate processes of one round each (after their own warm-up), merged into one run's
# JSON line (bench/run merge), so what a process or a freshly loaded database carries for its whole life varies from
# round to round and shows in the spread instead of deciding a run's median. Logs: NAME-RUN-pR.log per process.
set -uo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
OUT="${RSCAPRET_DATA_DIR:-$ROOT/.data}/bench"
mkdir -p "$OUT"
ROUNDS="${ROUNDS:-7}"
FRESH="${FRESH:-0}"
declare -A CMD=(
  [encoder]="encoder --batches 1,16,64 --threads 2"
  [caption]="caption --batches 1,16 --round-seconds 5"
  [ingest]="ingest --size 4480"
  [ingest-captions]="ingest --size 4480 --captions"
  [train]="train --config $ROOT/models/configs/bench-train-ucm.json --steps 10"
  [load]="load --gb 2"
  [changes]="changes"
  [search]="search --tiles 100000"
  [tiles]="tiles --size 20000"
  [export]="export --tiles 1000000"
)
ORDER=(encoder caption ingest ingest-captions train load changes search tiles export)
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${ORDER[@]}")
"$ROOT/bench/run" --help >/dev/null 2>&1 || true   # build once, before anything is timed
status=0
for name in "${names[@]}"; do
  [ -n "${CMD[$name]:-}" ] || { echo "unknown benchmark '$name' (one of: ${ORDER[*]})" >&2; exit 2; }
  for run in 1 2; do
    if [ "$FRESH" = 1 ]; then
      echo "== $name, run $run: $ROUNDS processes of bench/run ${CMD[$name]} --rounds 1, merged" >&2
      parts=()
      for p in $(seq 1 "$ROUNDS"); do
        # shellcheck disable=SC2086
        "$ROOT/bench/run" ${CMD[$name]} --rounds 1 > "$OUT/$name-$run-p$p.log" 2>&1 || { echo "$name run $run process $p failed: $OUT/$name-$run-p$p.log" >&2; status=1; }
        parts+=("$OUT/$name-$run-p$p.log")
      done
      "$ROOT/bench/run" merge "${parts[@]}" > "$OUT/$name-$run.log" 2>&1 || { echo "$name run $run: merge failed: $OUT/$name-$run.log" >&2; status=1; }
    else
      echo "== $name, run $run: bench/run ${CMD[$name]} --rounds $ROUNDS" >&2
      # shellcheck disable=SC2086
      "$ROOT/bench/run" ${CMD[$name]} --rounds "$ROUNDS" > "$OUT/$name-$run.log" 2>&1 || { echo "$name run $run failed: $OUT/$name-$run.log" >&2; status=1; }
    fi
  done
  "$ROOT/bench/run" compare "$OUT/$name-1.log" "$OUT/$name-2.log" > "$OUT/$name-compare.log" 2>&1
  echo "   compare: exit $? ($OUT/$name-compare.log)" >&2
done
exit $status
