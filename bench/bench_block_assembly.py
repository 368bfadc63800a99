"""Block assembly from a local tile server (fetch + decode + mosaic + warp + write) against
decoding the same tiles alone (baseline), on real LoveDA imagery served over 127.0.0.1."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from mapping.geo.grid import Grid, block_raster, tile_range  # noqa: E402
from mapping.imagery.registry import build_source  # noqa: E402
from mapping.imagery.tiles import decode_tile  # noqa: E402
from tests.mapping.tileserver import TileServer, real_imagery_tiles  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REAL = Path(os.environ.get("CROPLAYER_SHARED_DATA", ROOT.parent / "shared" / "data")) / "real"


def run(quick: bool) -> dict:
    grid = Grid()
    block = grid.block_at(118.81, 32.06)
    bounds = grid.bounds(block)
    zoom = 15 if quick else 16
    tr = tile_range(bounds, zoom)
    raster = block_raster(bounds, zoom)
    fn = real_imagery_tiles(
        REAL,
        x0=tr.x_min,
        y0=tr.y_min,
        nx=tr.x_max - tr.x_min + 1,
        ny=tr.y_max - tr.y_min + 1,
        zoom=zoom,
    )
    repeats = 2 if quick else 3
    with TileServer(fn, fmt="JPEG") as server, tempfile.TemporaryDirectory() as tmp:
        blobs = [server.tile_bytes(zoom, x, y) for x, y in tr.tiles()]  # encode once, up front
        cfg = {
            "slug": "bench",
            "url_template": server.template("jpg"),
            "zoom": zoom,
            "allow_loopback_http": True,
            "max_concurrency": 8,
        }
        t_dec, t_asm = [], []
        for i in range(repeats):
            t0 = time.perf_counter()
            for b in blobs:
                decode_tile(b, media_type="image/jpeg")
            t_dec.append(time.perf_counter() - t0)
            src = build_source("xyz", cfg, secrets={})  # no cache: every tile over HTTP
            t0 = time.perf_counter()
            res = src.fetch_block(block, raster, Path(tmp) / f"b{i}.tif")
            t_asm.append(time.perf_counter() - t0)
            src.close()
            assert res.status == "ok", res.reason
    best_dec, best_asm = min(t_dec), min(t_asm)
    return {
        "zoom": zoom,
        "tiles": tr.count,
        "block_px": [raster.width, raster.height],
        "baseline_decode_s": round(best_dec, 4),
        "assembly_s": round(best_asm, 4),
        "ratio": round(best_asm / best_dec, 2),
        "note": "ratio = full assembly time / decode-only time (best of repeats); lower is better",
    }
