#!/usr/bin/env bash
# The README's main command: prepare the machine (idempotent), bring the local PostGIS+pgvector up, and run
# the main job on the embedded defaults (bundled sample scene, default model).
# The cluster and its env file are under $RSCAPRET_DATA_DIR (default .data/; a relative path means the caller's
# current directory), on port $RSCAPRET_PG_PORT (default 55432): scripts/db.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${RSCAPRET_DATA_DIR:-}" ]; then [[ $RSCAPRET_DATA_DIR = /* ]] || RSCAPRET_DATA_DIR="$PWD/$RSCAPRET_DATA_DIR"; export RSCAPRET_DATA_DIR; fi
DATA_DIR="${RSCAPRET_DATA_DIR:-$ROOT/.data}"
cd "$ROOT"
bash scripts/bootstrap.sh
# shellcheck disable=SC1091
source "$DATA_DIR/db.env"
export RSCAPRET_DB
# The launcher builds the CLI (Release) only when a source is newer than the binary, and shows the build's errors.
exec "$ROOT/rscapret" demo "$@"
