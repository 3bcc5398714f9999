#!/usr/bin/env bash
# HTTP search under load (issue #17, item 4): two `rscapret serve` hosts on loopback over the local catalogue, one
# answering each text query with its own forward pass and no cache (RSCAPRET_QUERY_BATCH=1, RSCAPRET_QUERY_CACHE=0:
# how the host worked before batching), one with the defaults (batched, cached); Debian's wrk drives each at 1 and 8
# connections for SECONDS (default 10) per measurement, in ROUNDS (default 3) interleaved rounds: before c1, after c1,
# before c8, after c8. Every request is a different text, so the cache never answers. Prints each measurement, the
# medians, the after/before ratios and one JSON line. Needs the demo's catalogue (scripts/demo.sh) and `wrk`.
# BASELINE=COMMIT adds a third side, "shipped": the host as it was at COMMIT (built once in a git worktree under
# $RSCAPRET_DATA_DIR/bench/, default .data/bench/, serving this checkout's model folder), measured in the same rounds,
# and the after/shipped ratios.
# The "before" side is this build with batching and the cache off, so it already has every other change (the
# forward pass, the host's torch threads); "shipped" is the host users had.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
SECONDS_PER="${SECONDS_PER:-10}"; ROUNDS="${ROUNDS:-3}"
command -v wrk >/dev/null || { echo "bench/http-load.sh needs wrk (apt-get install wrk)" >&2; exit 2; }
LOGS="$(mktemp -d)"
pids=()
OUT="${RSCAPRET_DATA_DIR:-$ROOT/.data}/bench"; mkdir -p "$OUT"
# The hosts' logs are kept (http-load-before.log, http-load-after.log) for any error wrk counted.
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; cp "$LOGS"/*.log "$OUT/" 2>/dev/null; rm -rf "$LOGS"; }
trap cleanup EXIT
port_of() { case $1 in shipped) echo 5180 ;; before) echo 5181 ;; *) echo 5182 ;; esac; }
start() { # name launcher env...   (the port is port_of name)
  local name=$1 launcher=$2 port; port=$(port_of "$1"); shift 2
  env "$@" "$launcher" serve --urls "http://127.0.0.1:$port" --model "$ROOT/models/default" > "$LOGS/http-load-$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$port/api/search?q=warm%20up&k=1" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "$name host did not start: $(tail -5 "$LOGS/http-load-$name.log")" >&2; exit 1
}
"$ROOT/rscapret" --help >/dev/null   # build once, before anything is timed
# The hosts' connection string (a baseline tree has no .data/ of its own).
if [ -z "${RSCAPRET_DB:-}" ]; then source "${RSCAPRET_DATA_DIR:-$ROOT/.data}/db.env"; export RSCAPRET_DB; fi
SIDES="before after"
if [ -n "${BASELINE:-}" ]; then
  sha=$(git -C "$ROOT" rev-parse --short "$BASELINE^{commit}")
  tree="$OUT/baseline-$sha"
  [ -d "$tree" ] || git -C "$ROOT" worktree add --detach "$tree" "$sha" >/dev/null
  "$tree/rscapret" --help >/dev/null
  echo "shipped: the host at $sha ($(git -C "$ROOT" log -1 --format='%cd, %s' --date=short "$sha" | cut -c1-100))"
  start shipped "$tree/rscapret"
  SIDES="shipped before after"
fi
start before "$ROOT/rscapret" RSCAPRET_QUERY_BATCH=1 RSCAPRET_QUERY_CACHE=0
start after "$ROOT/rscapret"
# Warm-up, not counted: each host's JIT and caches settle under the load they will be measured at.
for side in $SIDES; do
  wrk -t 2 -c 8 -d 5s -s "$ROOT/bench/http/search.lua" "http://127.0.0.1:$(port_of "$side")" >/dev/null
done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); cores $(nproc); wrk: $(wrk -v 2>&1 | head -1)"
declare -A RPS P50 P95
for round in $(seq 1 "$ROUNDS"); do
  for c in 1 8; do
    for side in $SIDES; do
      line=$(wrk -t "$([ "$c" = 1 ] && echo 1 || echo 2)" -c "$c" -d "${SECONDS_PER}s" -s "$ROOT/bench/http/search.lua" "http://127.0.0.1:$(port_of "$side")" | grep '^RESULT')
      rps=$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$line"); p50=$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$line"); p95=$(sed -E 's/.*p95_ms=([0-9.]+).*/\1/' <<<"$line")
      errors=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line")
      echo "round $round  $side  c$c: $rps req/s, p50 $p50 ms, p95 $p95 ms, errors $errors"
      RPS[$side-c$c]+="$rps "; P50[$side-c$c]+="$p50 "; P95[$side-c$c]+="$p95 "
    done
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
range() { tr ' ' '\n' | grep . | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%s .. %s", lo, hi}'; }
# Per-round req/s ratio of side $1 to side $2 at $c connections, its median printed and added to the JSON as $3.
ratio() {
  local ratios rm
  ratios=$(paste <(tr ' ' '\n' <<<"${RPS[$1-c$c]}" | grep .) <(tr ' ' '\n' <<<"${RPS[$2-c$c]}" | grep .) | awk '{printf "%.3f ", $1/$2}')
  rm=$(median <<<"$ratios")
  echo "$1 / $2 req/s at $c connection(s), round by round: $ratios-> median $rm"
  json+=",\"$3\":$rm"
}
echo
json="{\"benchmark\":\"http-load\",\"seconds\":$SECONDS_PER,\"rounds\":$ROUNDS"
for c in 1 8; do
  for side in $SIDES; do
    k="$side-c$c"
    r=$(median <<<"${RPS[$k]}"); a=$(median <<<"${P50[$k]}"); b=$(median <<<"${P95[$k]}")
    echo "$side, $c connection(s): $r req/s [$(range <<<"${RPS[$k]}")], p50 $a ms, p95 $b ms [$(range <<<"${P95[$k]}")]"
    json+=",\"${side}_c${c}\":{\"rps\":$r,\"p50_ms\":$a,\"p95_ms\":$b}"
  done
  ratio after before "ratio_rps_c${c}"
  [ -z "${BASELINE:-}" ] || ratio after shipped "ratio_rps_vs_shipped_c${c}"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$json}"
