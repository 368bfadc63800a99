#!/usr/bin/env bash
# Install what croplayer needs on Debian 12, only what is missing: Debian packages (GDAL, GEOS,
# PROJ, SpatiaLite, PostGIS, Chromium, gettext, CJK fonts), a virtual environment made from Debian's Python (it can
# load SQLite extensions; pyenv's cannot), and the pinned requirements. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-dev gcc g++ gdal-bin libgdal32 libgdal-dev libgeos-c1v5
  libproj25 libproj-dev proj-bin pkg-config libsqlite3-mod-spatialite binutils postgresql-15-postgis-3 redis-server chromium
  gettext fonts-noto-cjk)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv from $PY"
  "$PY" -m venv .venv
fi
.venv/bin/python - <<'PY'
import sqlite3
c = sqlite3.connect(":memory:")
c.enable_load_extension(True)
c.load_extension("mod_spatialite")
PY

# rasterio, pyogrio and pyproj are built against Debian's GDAL/PROJ, the ones GeoDjango and
# SpatiaLite load into the same process: their wheels bundle other builds of GDAL and PROJ,
# and two builds in one process corrupt the heap (seen as segfaults and "free(): invalid
# pointer"). pyproj 3.6.1 is the last release for Debian 12's PROJ 9.1 and needs Cython < 3.1.
pin() { grep -i "^$1==" requirements.txt; }
gis_ok() {
  GDAL_WANT=$(gdal-config --version) PROJ_WANT=$(pkg-config --modversion proj) \
  .venv/bin/python - <<'PY' 2>/dev/null
import os, pyogrio, pyproj, rasterio
assert rasterio.__gdal_version__ == os.environ["GDAL_WANT"], rasterio.__gdal_version__
assert pyogrio.__gdal_version_string__ == os.environ["GDAL_WANT"]
assert pyproj.proj_version_str == os.environ["PROJ_WANT"], pyproj.proj_version_str
assert pyproj.CRS.from_epsg(4326).name == "WGS 84"
PY
}
build_gis() {
  echo "==> building rasterio, pyogrio, pyproj against Debian's GDAL $(gdal-config --version)"
  .venv/bin/python -m pip install -q "$(pin cython)" "$(pin setuptools)" "$(pin wheel)" "$(pin numpy)"
  # --no-cache-dir: a wheel cached from another build would be reused.
  .venv/bin/python -m pip install -q --no-cache-dir --force-reinstall --no-deps \
    --no-binary rasterio,pyogrio "$(pin rasterio)" "$(pin pyogrio)"
  .venv/bin/python -m pip install -q --no-cache-dir --force-reinstall --no-deps \
    --no-build-isolation --no-binary pyproj "$(pin pyproj)"
}

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing Python requirements"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, from the CPU build: a bare "torch" would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0
  gis_ok || build_gis
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi
gis_ok || { build_gis; gis_ok || { echo "rasterio/pyogrio/pyproj do not use Debian's GDAL/PROJ" >&2; exit 1; }; }

# Translations: locale/*/LC_MESSAGES/django.mo is committed (the app runs where gettext is not
# installed); recompile when a .po is newer than its .mo (a translator's edit).
for po in locale/*/LC_MESSAGES/django.po; do
  if [ ! -f "${po%.po}.mo" ] || [ "$po" -nt "${po%.po}.mo" ]; then
    echo "==> compiling translations"
    .venv/bin/python manage.py compilemessages --ignore=.venv --ignore=var >/dev/null
    break
  fi
done
