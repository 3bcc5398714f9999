#!/usr/bin/env bash
# Map page load to the first imagery tile, with the basemap (issue 29): a fresh catalogue database
# (rscapret_bench_pageload, beside RSCAPRET_DB's, dropped afterwards unless KEEP=1) holding one real scene (SCENE,
# default the NAIP sample of samples/scenes) ingested with the default model (vectors only: the page needs no
# caption), `rscapret serve` on loopback over it with a tile disk cache of its own, and bench/page-load.mjs driving
# headless Chromium: cold and warm tile cache as two sides, in ROUNDS (default 5) rounds of LOADS (default 3) page
# loads each, after one warm-up round. Prints per round, the medians, the cold/warm ratios and two JSON lines (the
# report, then the p50s over every load). Screenshots of the last round: $RSCAPRET_DATA_DIR/bench/page-load-{cold,warm}.png
# (default .data/bench/). Needs the local PostgreSQL (psql), Chromium (/usr/bin/chromium) and tests/web's
# playwright-core (npm ci in tests/web). RSCAPRET_LAUNCHER runs another rscapret build (default ./rscapret).
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
ROUNDS="${ROUNDS:-5}"; LOADS="${LOADS:-3}"; PORT="${PORT:-5190}"
SCENE="${SCENE:-$ROOT/samples/scenes/naip_m_4709963_se_14_1_20200831.tif}"
RSCAPRET="${RSCAPRET_LAUNCHER:-$ROOT/rscapret}"
OUT="${RSCAPRET_DATA_DIR:-$ROOT/.data}/bench"; mkdir -p "$OUT"
[ -f "$SCENE" ] || { echo "bench/page-load.sh: no scene at $SCENE" >&2; exit 2; }
[ -d "$ROOT/tests/web/node_modules/playwright-core" ] || { echo "bench/page-load.sh: run npm ci in tests/web first" >&2; exit 2; }
if [ -z "${RSCAPRET_DB:-}" ]; then source "${RSCAPRET_DATA_DIR:-$ROOT/.data}/db.env"; export RSCAPRET_DB; fi

# psql on the catalogue's server, from the Npgsql connection string.
field() { sed -n "s/.*\\b$1=\\([^;]*\\).*/\\1/Ip" <<<"$RSCAPRET_DB"; }
admin_psql() { PGPASSWORD="$(field Password)" psql -X -q -v ON_ERROR_STOP=1 -h "$(field Host)" -p "$(field Port)" -U "$(field Username)" -d "$(field Database)" "$@"; }
DB=rscapret_bench_pageload
BENCH_DB="$(sed "s/\\bDatabase=[^;]*/Database=$DB/I" <<<"$RSCAPRET_DB")"
WORK="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  cp "$WORK/serve.log" "$OUT/page-load-serve.log" 2>/dev/null || true
  rm -rf "$WORK"
  [ "${KEEP:-0}" = 1 ] || admin_psql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
}
trap cleanup EXIT

"$RSCAPRET" --help >/dev/null   # build once, before anything is timed
admin_psql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
RSCAPRET_DB="$BENCH_DB" "$RSCAPRET" db migrate >/dev/null
echo "ingesting $(basename "$SCENE") with models/default (vectors only) ..."
RSCAPRET_DB="$BENCH_DB" "$RSCAPRET" ingest "$SCENE" --model "$ROOT/models/default" --no-captions --device cpu >"$WORK/ingest.log" 2>&1 \
  || { cat "$WORK/ingest.log" >&2; exit 1; }

RSCAPRET_DB="$BENCH_DB" RSCAPRET_TILE_CACHE="$WORK/tile-cache" "$RSCAPRET" serve --urls "http://127.0.0.1:$PORT" --model "$ROOT/models/default" \
  >"$WORK/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 180); do
  curl -fs "http://127.0.0.1:$PORT/api/scenes?limit=1" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { echo "rscapret serve exited: $(tail -5 "$WORK/serve.log")" >&2; exit 1; }
  sleep 1
done
echo "load average (1, 5, 15 min) before: $(cut -d' ' -f1-3 /proc/loadavg)"
node "$ROOT/bench/page-load.mjs" "http://127.0.0.1:$PORT" "$WORK/tile-cache" "$OUT/page-load" --rounds "$ROUNDS" --loads "$LOADS"
echo "load average (1, 5, 15 min) after: $(cut -d' ' -f1-3 /proc/loadavg)"
