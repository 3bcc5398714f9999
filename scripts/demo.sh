#!/usr/bin/env bash
# The README's main command: prepare the machine (idempotent), bring the local PostGIS+pgvector up, and run
# the main job on the embedded defaults (bundled sample scene, default model).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
# shellcheck disable=SC1091
source .data/db.env
export RSCAPRET_DB
dotnet build src/RsCapRet.Cli -c Release -v q -nologo >/dev/null
exec dotnet src/RsCapRet.Cli/bin/Release/net10.0/linux-x64/rscapret.dll demo "$@"
