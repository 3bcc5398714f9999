#!/usr/bin/env bash
# Local PostgreSQL 15 (+ PostGIS, pgvector) for development, tests and the demo: a cluster of its own under
# $RSCAPRET_DATA_DIR (default .data/ in the checkout; a relative path means the caller's current directory), on
# 127.0.0.1:$RSCAPRET_PG_PORT (default 55432), listening on loopback only, run by a non-root user.
#   scripts/db.sh start    init (once) + start + create database + write $RSCAPRET_DATA_DIR/db.env   (idempotent)
#   scripts/db.sh stop | status | env
#   scripts/db.sh restart [--cold]   --cold: start with an empty buffer cache (autoprewarm's block list removed;
#                                    the benchmarks' cold pass)
#   scripts/db.sh replica start | stop | status
#       a streaming replica of that cluster (pg_basebackup -R over loopback) under $RSCAPRET_DATA_DIR/pg-replica on
#       port+1 ($RSCAPRET_PG_REPLICA_PORT), read-only, for searches: writes $RSCAPRET_DATA_DIR/db-read.env with RSCAPRET_DB_READ
# The password is generated once and kept in $RSCAPRET_DATA_DIR/db.env (mode 600); nothing is hard-coded.
# A cluster keeps the port it was created with (postgresql.conf, db.env): without RSCAPRET_PG_PORT that port is used;
# a different RSCAPRET_PG_PORT for an existing cluster is an error rather than a connection string that points nowhere.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Relative: the caller's current directory (PostgreSQL would read relative paths in its configuration against its own
# data folder).
if [ -n "${RSCAPRET_DATA_DIR:-}" ] && [[ $RSCAPRET_DATA_DIR != /* ]]; then RSCAPRET_DATA_DIR="$PWD/$RSCAPRET_DATA_DIR"; fi
DATA_DIR="${RSCAPRET_DATA_DIR:-$ROOT/.data}"
PGDATA_DIR="$DATA_DIR/pg"
SOCKET_DIR="$DATA_DIR/pg-run"
ENV_FILE="$DATA_DIR/db.env"
# The port an existing cluster was created with, from its env file (empty for a new one).
CLUSTER_PORT="$(sed -n 's/.*[;'"'"']Port=\([0-9][0-9]*\);.*/\1/p' "$ENV_FILE" 2>/dev/null | sed -n 1p || true)"
PORT="${RSCAPRET_PG_PORT:-${CLUSTER_PORT:-55432}}"
DB_NAME="${RSCAPRET_DB_NAME:-rscapret}"
DB_USER=rscapret
PG_BIN=/usr/lib/postgresql/15/bin
REPLICA_DIR="$DATA_DIR/pg-replica"
REPLICA_SOCKET_DIR="$DATA_DIR/pg-replica-run"
REPLICA_PORT="${RSCAPRET_PG_REPLICA_PORT:-$((PORT + 1))}"
READ_ENV_FILE="$DATA_DIR/db-read.env"
log() { printf '[db] %s\n' "$*" >&2; }

# PostgreSQL refuses to run as root: as root, run it as the 'postgres' system user the Debian package made.
if [ "$(id -u)" -eq 0 ]; then
  RUN_AS=postgres
  as_pg() { runuser -u "$RUN_AS" -- "$@"; }
else
  RUN_AS="$(id -un)"
  as_pg() { "$@"; }
fi

ensure_env_file() {
  if [ -n "$CLUSTER_PORT" ] && [ "$CLUSTER_PORT" != "$PORT" ]; then
    log "the cluster in $DATA_DIR was created on port $CLUSTER_PORT ($ENV_FILE), not RSCAPRET_PG_PORT=$PORT:"
    log "unset RSCAPRET_PG_PORT, set it to $CLUSTER_PORT, or use another RSCAPRET_DATA_DIR"
    exit 1
  fi
  mkdir -p "$DATA_DIR"
  if [ ! -f "$ENV_FILE" ]; then
    local pw; pw=$(openssl rand -hex 16)
    umask 077
    printf "export RSCAPRET_DB='Host=127.0.0.1;Port=%s;Database=%s;Username=%s;Password=%s'\n" \
      "$PORT" "$DB_NAME" "$DB_USER" "$pw" > "$ENV_FILE"
    printf '%s\n' "$pw" > "$DATA_DIR/db.password"
  fi
}

init_cluster() {
  [ -f "$PGDATA_DIR/PG_VERSION" ] && return 0
  log "initialising cluster in $PGDATA_DIR (run as $RUN_AS)"
  mkdir -p "$PGDATA_DIR" "$SOCKET_DIR"
  chown "$RUN_AS" "$PGDATA_DIR" "$SOCKET_DIR"
  chmod 700 "$PGDATA_DIR"
  local pwfile; pwfile=$(mktemp); cp "$DATA_DIR/db.password" "$pwfile"; chown "$RUN_AS" "$pwfile"
  as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U "$DB_USER" --pwfile="$pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >> "$PGDATA_DIR/postgresql.conf" <<CONF
# RsCapRet local cluster
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
max_connections = 200
shared_buffers = 512MB
maintenance_work_mem = 1GB
fsync = on
CONF
}

is_running() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }

# Settings sized from this machine, rewritten at every start (a running cluster takes them at its next start):
# shared_buffers a quarter of memory (128 MB..8 GB) so the HNSW index and the tiles it points to stay in PostgreSQL's
# own cache (docs/architecture.md, "Search at scale": with the index larger than shared_buffers, latency swings), maintenance memory
# and workers for index builds, and autoprewarm, which reloads the cached pages (the HNSW index among them) after a
# restart instead of faulting them in query by query.
write_tuning() {
  local mem_mb cores sb mwm workers conf="$PGDATA_DIR/rscapret-tuning.conf"
  mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
  cores=$(nproc)
  sb=$(( mem_mb / 4 )); [ "$sb" -lt 128 ] && sb=128; [ "$sb" -gt 8192 ] && sb=8192
  mwm=$(( mem_mb / 16 )); [ "$mwm" -lt 256 ] && mwm=256; [ "$mwm" -gt 2048 ] && mwm=2048
  workers=$(( cores - 1 )); [ "$workers" -lt 0 ] && workers=0
  {
    echo "# written by scripts/db.sh from this machine: ${mem_mb} MB memory, ${cores} cores"
    echo "shared_buffers = ${sb}MB"
    echo "effective_cache_size = $(( mem_mb / 2 ))MB"
    echo "maintenance_work_mem = ${mwm}MB"
    echo "max_parallel_maintenance_workers = ${workers}"
    if [ -f "$(dirname "$PG_BIN")/lib/pg_prewarm.so" ]; then
      echo "shared_preload_libraries = 'pg_prewarm'"
      echo "pg_prewarm.autoprewarm = on"
    fi
  } > "$conf"
  chown "$RUN_AS" "$conf"
  grep -q "^include_if_exists = 'rscapret-tuning.conf'" "$PGDATA_DIR/postgresql.conf" \
    || echo "include_if_exists = 'rscapret-tuning.conf'" >> "$PGDATA_DIR/postgresql.conf"
}

start() {
  [ -x "$PG_BIN/initdb" ] || { log "PostgreSQL 15 is not installed: run scripts/bootstrap.sh"; exit 1; }
  ensure_env_file
  init_cluster
  write_tuning
  mkdir -p "$SOCKET_DIR"; chown "$RUN_AS" "$SOCKET_DIR"
  if ! is_running; then
    log "starting PostgreSQL on 127.0.0.1:$PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 60 start >/dev/null
  fi
  export PGPASSWORD; PGPASSWORD=$(cat "$DATA_DIR/db.password")
  if ! psql -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" | grep 1 >/dev/null; then
    log "creating database $DB_NAME"
    psql -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres -qc "CREATE DATABASE \"$DB_NAME\"" >/dev/null
  fi
  log "connection string in $ENV_FILE (source it for RSCAPRET_DB)"
}

replica_running() { as_pg "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" status >/dev/null 2>&1; }

# A hot standby of the local cluster: a base backup streamed over loopback (the rscapret role is the cluster's
# superuser, so it may replicate; initdb's pg_hba allows replication from 127.0.0.1), then WAL streaming from the
# primary (primary_conninfo and standby.signal, written by pg_basebackup -R). Searches read from it through
# RSCAPRET_DB_READ while ingestion writes to the primary; it serves what it has replayed.
replica_start() {
  is_running || { log "the primary is not running: scripts/db.sh start first"; exit 1; }
  export PGPASSWORD; PGPASSWORD=$(cat "$DATA_DIR/db.password")
  if [ ! -f "$REPLICA_DIR/PG_VERSION" ]; then
    log "base backup of 127.0.0.1:$PORT into $REPLICA_DIR"
    mkdir -p "$REPLICA_DIR" "$REPLICA_SOCKET_DIR"
    chown "$RUN_AS" "$REPLICA_DIR" "$REPLICA_SOCKET_DIR"; chmod 700 "$REPLICA_DIR"
    as_pg env PGPASSWORD="$PGPASSWORD" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" \
      -D "$REPLICA_DIR" -R -X stream -c fast >/dev/null
    # Its own port and socket; the rest of the configuration is the primary's, copied by the backup.
    cat >> "$REPLICA_DIR/postgresql.auto.conf" <<CONF
port = $REPLICA_PORT
unix_socket_directories = '$REPLICA_SOCKET_DIR'
hot_standby = on
CONF
    rm -f "$REPLICA_DIR/server.log" "$REPLICA_DIR/postmaster.pid"
  fi
  mkdir -p "$REPLICA_SOCKET_DIR"; chown "$RUN_AS" "$REPLICA_SOCKET_DIR"
  if ! replica_running; then
    log "starting the replica on 127.0.0.1:$REPLICA_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" -l "$REPLICA_DIR/server.log" -w -t 60 start >/dev/null
  fi
  (umask 077; sed "s/Port=$PORT;/Port=$REPLICA_PORT;/; s/RSCAPRET_DB=/RSCAPRET_DB_READ=/" "$ENV_FILE" > "$READ_ENV_FILE")
  log "read-only replica on 127.0.0.1:$REPLICA_PORT; RSCAPRET_DB_READ in $READ_ENV_FILE (source it beside db.env)"
}

replica() {
  case "${1:-status}" in
    start) replica_start ;;
    stop) if [ -f "$REPLICA_DIR/PG_VERSION" ] && replica_running; then as_pg "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" -w stop >/dev/null; log "replica stopped"; fi ;;
    status) if [ -f "$REPLICA_DIR/PG_VERSION" ] && replica_running; then log "replica running on 127.0.0.1:$REPLICA_PORT"; else log "replica not running"; exit 3; fi ;;
    *) echo "usage: $0 replica start|stop|status" >&2; exit 2 ;;
  esac
}

case "${1:-start}" in
  start) start ;;
  stop) if [ -f "$PGDATA_DIR/PG_VERSION" ] && is_running; then as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w stop >/dev/null; log "stopped"; fi ;;
  status) if [ -f "$PGDATA_DIR/PG_VERSION" ] && is_running; then log "running on 127.0.0.1:$PORT"; else log "not running"; exit 3; fi ;;
  env) ensure_env_file; cat "$ENV_FILE" ;;
  replica) replica "${2:-status}" ;;
  restart)
    if [ -f "$PGDATA_DIR/PG_VERSION" ] && is_running; then as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w stop >/dev/null; fi
    [ "${2:-}" = "--cold" ] && rm -f "$PGDATA_DIR/autoprewarm.blocks"
    start ;;
  *) echo "usage: $0 start|stop|restart [--cold]|status|env|replica start|stop|status" >&2; exit 2 ;;
esac
