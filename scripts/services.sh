#!/usr/bin/env bash
# Make sure PostgreSQL (with PostGIS) and Redis answer on 127.0.0.1, starting them if needed.
set -euo pipefail
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "==> starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "==> starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/croplayer.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
# The test database URL has no password (this machine's PostgreSQL trusts local TCP logins).
# Debian's default asks for one: say so plainly rather than failing inside the test run.
PG_URL_CHECK="${PG_URL:-postgis://postgres@127.0.0.1:5432/croplayer}"
PG_SERVER="postgresql://${PG_URL_CHECK#*://}"
if ! psql "${PG_SERVER%/*}/postgres" -qtA -c 'select 1' >/dev/null 2>&1; then
  echo "PostgreSQL at ${PG_URL_CHECK#*@} refuses the test login: allow trust for 127.0.0.1" >&2
  echo "in pg_hba.conf, or run 'make test PG_URL=postgis://USER:PASSWORD@127.0.0.1:5432/croplayer'." >&2
  exit 1
fi
