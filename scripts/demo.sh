#!/usr/bin/env bash
# Run the demo: migrate, load the demo data, start a Celery worker and the ASGI server.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 DJANGO_SETTINGS_MODULE=croplayer_site.settings
# DEBUG off, as in production: a wrong address gets the site's own 404 page (with its
# navigation), not Django's debug page listing every URL pattern. Static files are collected
# below and served by the app (WhiteNoise).
export DEBUG=0
PORT="${PORT:-8000}"
PY=.venv/bin/python
# The overview and integration maps' base map; BASEMAP_URL= (empty) for none (offline machines).
export BASEMAP_URL="${BASEMAP_URL-https://tile.openstreetmap.org/{z}/{x}/{y}.png}"
mkdir -p var/log var/celery
REDIS=""
if [ -z "${REDIS_URL:-}" ]; then
  # The embedded default's broker: a private redis-server on a unix socket, no TCP port.
  $PY -m croplayer_site.embedded_redis serve >var/log/redis.log 2>&1 &
  REDIS=$!
  for _ in $(seq 100); do $PY -m croplayer_site.embedded_redis ping && break; sleep 0.2; done
  $PY -m croplayer_site.embedded_redis ping || { echo "redis-server did not start (var/log/redis.log)"; exit 1; }
  echo "broker: private redis-server on var/redis.sock (log var/log/redis.log); set REDIS_URL to use another Redis"
  trap 'kill $REDIS 2>/dev/null || true' EXIT INT TERM
fi
$PY manage.py migrate --noinput -v 0
$PY manage.py load_demo | tee var/demo-logins.txt
$PY manage.py collectstatic --noinput -v 0
# -B: the same process runs the beat schedule (the round and export reconcilers).
$PY -m celery -A croplayer_site worker -B --schedule var/celery/beat-schedule -Q cpu,gpu \
  --concurrency 2 --loglevel INFO \
  >var/log/worker.log 2>&1 &
WORKER=$!
$PY manage.py imagery_fetch --campaign demo-2020 --source mapbox --source google --no-wait >/dev/null
trap 'kill $WORKER 2>/dev/null || true; sleep 1; [ -z "$REDIS" ] || kill $REDIS 2>/dev/null || true' EXIT INT TERM
echo
echo "croplayer demo: http://127.0.0.1:${PORT}/   (worker log: var/log/worker.log; Ctrl-C stops)"
cat var/demo-logins.txt | grep -E '^(  |login)' || true
exec_daphne() { $PY -m daphne -b 127.0.0.1 -p "$PORT" croplayer_site.asgi:application; }
exec_daphne
