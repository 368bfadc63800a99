"""XYZ source against a real tile server on 127.0.0.1: fetch, cache, concurrency, warp, failures."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pydantic import ValidationError
from rasterio.transform import Affine

from mapping.geo.grid import BlockRaster, Grid, block_raster, lonlat_to_tile_fraction, tile_range
from mapping.geo.raster import sha256_file
from mapping.imagery.registry import build_source, parse_source_config
from tests.mapping.tileserver import TileServer, real_imagery_tiles, tile_colour

GRID = Grid()
BLOCK = GRID.block_at(118.81, 32.06)  # near Nanjing
BOUNDS = GRID.bounds(BLOCK)
Z = 14  # small tile counts keep these tests fast; the real-imagery test uses z16


def solid_tiles(z: int, x: int, y: int) -> np.ndarray:
    return np.broadcast_to(np.array(tile_colour(x, y), np.uint8), (256, 256, 3)).copy()


def xyz_config(server: TileServer, tmp_path: Path | None = None, **kw: object) -> dict:
    cfg = {
        "slug": "test",
        "url_template": server.template(),
        "zoom": Z,
        "allow_loopback_http": True,
        "max_concurrency": 4,
        "timeout_s": 2.0,
        "retries": 2,
        "backoff_s": 0.01,
    }
    if tmp_path is not None:
        cfg["cache_dir"] = str(tmp_path / "cache")
    cfg.update(kw)
    return cfg


@pytest.fixture()
def server():
    with TileServer(solid_tiles) as s:
        yield s


def raster_z(z: int = Z) -> BlockRaster:
    return block_raster(BOUNDS, z)


def fetch(server: TileServer, tmp_path: Path, name: str = "b.tif", **kw: object):
    src = build_source("xyz", xyz_config(server, **kw), secrets={})
    try:
        return src.fetch_block(BLOCK, raster_z(), tmp_path / name)
    finally:
        src.close()


def test_fetch_writes_georeferenced_block_with_source_colours(server, tmp_path):
    r = raster_z()
    res = fetch(server, tmp_path)
    assert res.status == "ok", res.reason
    tr = tile_range(BOUNDS, Z)
    assert res.tiles_total == tr.count == res.tiles_ok == server.total
    assert res.sha256 == sha256_file(res.path)
    with rasterio.open(res.path) as ds:
        assert ds.crs.to_epsg() == 4326
        assert (ds.width, ds.height, ds.count) == (r.width, r.height, 3)
        assert ds.transform.almost_equals(Affine(*r.transform()), precision=1e-12)
        assert ds.dtypes == ("uint8",) * 3
        assert ds.compression.name.lower() == "deflate"
        img = ds.read()
        assert (ds.dataset_mask() == 255).all()
    # Pixels well inside a tile carry that tile's colour exactly (bilinear of a constant).
    dx, dy = r.pixel_deg
    checked = 0
    for row in range(5, r.height, 37):
        for col in range(5, r.width, 41):
            lon, lat = r.west + (col + 0.5) * dx, r.north - (row + 0.5) * dy
            fx, fy = lonlat_to_tile_fraction(lon, lat, Z)
            if min(fx % 1, 1 - fx % 1, fy % 1, 1 - fy % 1) < 0.02:
                continue
            assert tuple(img[:, row, col]) == tile_colour(math.floor(fx), math.floor(fy))
            checked += 1
    assert checked > 100


def test_real_imagery_block_matches_tiles(shared_data, tmp_path):
    z = 16
    tr = tile_range(BOUNDS, z)
    fn = real_imagery_tiles(
        shared_data / "real",
        x0=tr.x_min,
        y0=tr.y_min,
        nx=tr.x_max - tr.x_min + 1,
        ny=tr.y_max - tr.y_min + 1,
    )
    with TileServer(fn, fmt="JPEG") as s:
        cfg = xyz_config(s, zoom=z, max_concurrency=8, url_template=s.template("jpg"))
        src = build_source("xyz", cfg, secrets={})
        r = block_raster(BOUNDS, z)
        res = src.fetch_block(BLOCK, r, tmp_path / "real.tif")
        src.close()
    assert res.status == "ok" and res.tiles_ok == tr.count and res.valid_fraction == 1.0
    with rasterio.open(res.path) as ds:
        img = ds.read()
    # Sample output pixels, look up the source pixel they came from (nearest), compare.
    rng = np.random.default_rng(0)
    dx, dy = r.pixel_deg
    diffs, shuffled = [], []
    rows, cols = rng.integers(0, r.height, 300), rng.integers(0, r.width, 300)
    for row, col in zip(rows, cols, strict=True):
        fx, fy = lonlat_to_tile_fraction(r.west + (col + 0.5) * dx, r.north - (row + 0.5) * dy, z)
        tile = fn(z, math.floor(fx), math.floor(fy))
        px = tile[min(int(fy % 1 * 256), 255), min(int(fx % 1 * 256), 255)].astype(int)
        diffs.append(np.abs(img[:, row, col].astype(int) - px).mean())
        shuffled.append(np.abs(img[:, rows[0], cols[0]].astype(int) - px).mean())
    assert np.median(diffs) < 10 < np.median(shuffled)


def test_second_fetch_uses_cache_and_makes_no_requests(server, tmp_path):
    first = fetch(server, tmp_path, "a.tif", cache_dir=str(tmp_path / "cache"))
    n = server.total
    assert first.status == "ok" and n == first.tiles_total
    second = fetch(server, tmp_path, "b.tif", cache_dir=str(tmp_path / "cache"))
    assert server.total == n
    assert second.status == "ok" and second.sha256 == first.sha256


def test_cache_keeps_only_valid_images(server, tmp_path):
    tr = tile_range(BOUNDS, Z)
    bad = (Z, tr.x_min, tr.y_min)
    server.modes[bad] = "corrupt"
    res = fetch(server, tmp_path, cache_dir=str(tmp_path / "cache"))
    assert res.status == "failed"
    (folder,) = (tmp_path / "cache").glob("test-*")  # one folder per slug and URL template
    cached = list(folder.rglob("*.png"))
    assert len(cached) == tr.count - 1
    assert not (folder / str(Z) / str(bad[1]) / f"{bad[2]}.png").exists()


def test_concurrency_limit_is_shared_by_callers(server, tmp_path):
    server.delay_s = 0.03
    src = build_source("xyz", xyz_config(server, max_concurrency=3), secrets={})
    results = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(
                src.fetch_block(BLOCK, raster_z(), tmp_path / f"c{i}.tif")
            )
        )
        for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    src.close()
    assert [r.status for r in results] == ["ok"] * 3
    assert server.max_in_flight == 3  # reached, never exceeded


def test_some_tiles_absent_gives_partial_nodata(server, tmp_path):
    tr = tile_range(BOUNDS, Z)
    server.modes[(Z, tr.x_min, tr.y_min)] = "404"
    server.modes[(Z, tr.x_max, tr.y_max)] = "204"
    res = fetch(server, tmp_path)
    assert res.status == "ok"
    assert res.tiles_absent == 2 and res.tiles_ok == tr.count - 2
    assert f"upstream HTTP 404 for 1 of {tr.count} tiles" in res.reason
    assert 0 < res.valid_fraction < 1
    with rasterio.open(res.path) as ds:
        mask = ds.dataset_mask()
        img = ds.read()
    assert (
        mask[0, 0] == 0
        and mask[-1, -1] == 0
        and mask[mask.shape[0] // 2, mask.shape[1] // 2] == 255
    )
    assert (img[:, mask == 0] == 0).all()


def test_all_tiles_absent_is_missing(server, tmp_path):
    server.modes["*"] = "404"
    res = fetch(server, tmp_path)
    assert res.status == "missing" and res.path is None
    assert not (tmp_path / "b.tif").exists()


@pytest.mark.parametrize("mode", ["500-then-ok", "429-then-ok"])
def test_transient_errors_are_retried(server, tmp_path, mode):
    tr = tile_range(BOUNDS, Z)
    server.modes[(Z, tr.x_min, tr.y_min)] = mode
    res = fetch(server, tmp_path)
    assert res.status == "ok", res.reason
    assert server.requests[f"/tiles/{Z}/{tr.x_min}/{tr.y_min}.png"] == 2
    assert server.total == tr.count + 1


@pytest.mark.parametrize(
    ("mode", "reason", "attempts"),
    [
        ("500", "upstream HTTP 500", 3),
        ("503", "upstream HTTP 503", 3),
        ("403", "upstream HTTP 403", 1),
        ("html", "wrong content type text/html", 1),
        ("corrupt", "corrupt image", 1),
        ("redirect-other", "redirect to another host refused", 1),
    ],
)
def test_upstream_failures_give_failed_with_reason(server, tmp_path, mode, reason, attempts):
    tr = tile_range(BOUNDS, Z)
    server.modes[(Z, tr.x_min, tr.y_min)] = mode
    res = fetch(server, tmp_path)
    assert res.status == "failed"
    assert res.reason.startswith(reason) and f"for 1 of {tr.count} tiles" in res.reason
    assert res.tiles_failed == 1 and res.path is None
    assert not (tmp_path / "b.tif").exists()
    assert server.requests[f"/tiles/{Z}/{tr.x_min}/{tr.y_min}.png"] == attempts


def test_redirect_to_other_host_is_not_followed(tmp_path):
    with TileServer(solid_tiles) as other, TileServer(solid_tiles) as s:
        s.other_base = f"http://localhost:{other.port}/"
        s.modes["*"] = "redirect-other"
        res = fetch(s, tmp_path)
        assert res.status == "failed" and other.total == 0


def test_same_host_redirect_is_followed(server, tmp_path):
    server.modes["*"] = "redirect-same"
    res = fetch(server, tmp_path)
    assert res.status == "ok" and server.total == 2 * res.tiles_total


def test_timeout_gives_failed(server, tmp_path):
    tr = tile_range(BOUNDS, Z)
    server.modes[(Z, tr.x_min, tr.y_min)] = "slow"
    server.slow_s = 1.0
    res = fetch(server, tmp_path, timeout_s=0.2, retries=1)
    assert res.status == "failed" and res.reason.startswith("timeout for 1 of")


def test_token_from_env_is_sent_but_never_reported(tmp_path, caplog):
    token = "pk.SECRET-token_123"
    with TileServer(solid_tiles, token=token) as s:
        cfg = xyz_config(s, url_template=s.template(token=True), token_env="TILE_TOKEN")
        tr = tile_range(BOUNDS, Z)
        s.modes[(Z, tr.x_min, tr.y_min)] = "500"
        with caplog.at_level(logging.DEBUG):
            src = build_source("xyz", cfg, secrets={"TILE_TOKEN": token})
            res = src.fetch_block(BLOCK, raster_z(), tmp_path / "t.tif")
            src.close()
        assert all(q == f"access_token={token}" for q in s.seen_queries)
    assert res.status == "failed"  # the 500s; every other tile passed the token check
    assert res.tiles_ok == tr.count - 1
    assert token not in res.reason and token not in repr(res)
    assert token not in repr(src.config.model_dump())
    assert caplog.records, "urllib3/xyz debug logging was expected"
    assert all(token not in rec.getMessage() for rec in caplog.records)


def test_missing_token_is_a_config_error(server):
    cfg = xyz_config(server, url_template=server.template(token=True), token_env="TILE_TOKEN")
    with pytest.raises(ValueError, match="TILE_TOKEN"):
        build_source("xyz", cfg, secrets={})


GOOD = "https://api.mapbox.com/v4/mapbox.satellite/{z}/{x}/{y}.jpg?access_token={token}"


@pytest.mark.parametrize(
    ("template", "extra", "match"),
    [
        ("http://api.mapbox.com/{z}/{x}/{y}.png", {}, "http"),
        ("http://tiles.example.org/{z}/{x}/{y}.png", {"allow_loopback_http": True}, "http"),
        ("https://user:pw@api.mapbox.com/{z}/{x}/{y}.png", {}, "credentials"),
        ("https://8.8.8.8/{z}/{x}/{y}.png", {"allowed_hosts": ["8.8.8.8"]}, "IP-literal"),
        ("https://0x7f.1/{z}/{x}/{y}.png", {"allowed_hosts": ["0x7f.1"]}, "IP-literal"),
        ("https://[::1]/{z}/{x}/{y}.png", {}, "IP-literal"),
        ("https://127.0.0.1/{z}/{x}/{y}.png", {}, "IP-literal"),
        ("https://evil.example.com/{z}/{x}/{y}.png", {}, "allow-list"),
        ("https://api.mapbox.com.evil.com/{z}/{x}/{y}.png", {}, "allow-list"),
        ("https://api.mapbox.com/{z}/{x}.png", {}, r"lacks \{y\}"),
        ("https://api.mapbox.com/{x}/{y}.png", {}, r"lacks \{z\}"),
        ("https://api.mapbox.com/{z}/{x}/{y}/{q}.png", {}, "unknown placeholders"),
        (
            "https://{z}.mapbox.com/{z}/{x}/{y}.png",
            {"allowed_hosts": ["*.mapbox.com"]},
            "host part",
        ),
        ("ftp://api.mapbox.com/{z}/{x}/{y}.png", {}, "scheme"),
        ("https://api.mapbox.com/{z}/{x}/{y}.png?access_token=pk.abc", {}, "token"),
        (GOOD, {}, "token_env"),  # {token} without token_env
    ],
)
def test_config_rejects_unsafe_templates(template, extra, match):
    with pytest.raises(ValidationError, match=match):
        parse_source_config("xyz", {"slug": "x", "url_template": template, **extra})


def test_config_accepts_known_hosts_and_site_allow_list():
    cfg = parse_source_config(
        "xyz", {"slug": "mapbox", "url_template": GOOD, "token_env": "MAPBOX_TOKEN"}
    )
    assert cfg.url_template == GOOD
    with pytest.raises(ValidationError, match="allow-list"):
        parse_source_config(
            "xyz",
            {"slug": "mapbox", "url_template": GOOD, "token_env": "MAPBOX_TOKEN"},
            allowed_hosts=["mt1.google.com"],
        )
    with pytest.raises(ValidationError, match="Extra inputs"):
        parse_source_config("xyz", {"slug": "m", "url_template": GOOD, "token_env": "T", "x": 1})
    with pytest.raises(ValueError, match="unknown imagery source kind"):
        parse_source_config("wms", {})


def test_cache_is_not_shared_between_url_templates(server, tmp_path):
    """Another template under the same slug (e.g. a new imagery version) refetches its tiles."""
    fetch(server, tmp_path, cache_dir=str(tmp_path / "cache"))
    first = server.total
    fetch(server, tmp_path, cache_dir=str(tmp_path / "cache"),
          url_template=server.template() + "?v=2")
    assert server.total > first
    assert len(list((tmp_path / "cache").glob("test-*"))) == 2
