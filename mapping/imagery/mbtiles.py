"""MBTiles sources: raster tiles in an SQLite file (standard schema, TMS rows), mosaic + warp."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from mapping.geo.grid import BlockId, BlockRaster, tile_range
from mapping.geo.mosaic import assemble_block
from mapping.imagery.base import BlockImageResult, finish_block
from mapping.imagery.tiles import TileDecodeError, decode_tile


class MbtilesConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["mbtiles"] = "mbtiles"
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    path: str
    zoom: int = Field(16, ge=0, le=22)
    tile_size: int = Field(256, ge=64, le=1024)
    resampling: Literal["bilinear", "cubic"] = "bilinear"


def tms_row(y: int, zoom: int) -> int:
    """MBTiles stores TMS rows (origin bottom-left): tile_row = 2^z - 1 - y."""
    return (1 << zoom) - 1 - y


class MbtilesSource:
    kind = "mbtiles"

    def __init__(self, config: MbtilesConfig) -> None:
        self.config = config
        self.slug = config.slug

    def close(self) -> None:
        pass

    def _connect(self) -> sqlite3.Connection:
        path = Path(self.config.path).resolve()
        # Read-only URI: a missing file is an error instead of a new empty database.
        return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)

    def fetch_block(self, block: BlockId, raster: BlockRaster, dest: Path) -> BlockImageResult:
        cfg = self.config
        z = cfg.zoom
        trange = tile_range((raster.west, raster.south, raster.east, raster.north), z)
        coords = trange.tiles()
        n = len(coords)
        tiles: dict[tuple[int, int], npt.NDArray[np.uint8] | None] = {}
        corrupt = 0
        try:
            con = self._connect()
        except sqlite3.Error as exc:
            return BlockImageResult(
                status="failed",
                reason=f"cannot open MBTiles: {exc}",
                width=raster.width,
                height=raster.height,
                tiles_total=n,
            )
        try:
            rows = {
                (c, r): data
                for c, r, data in con.execute(
                    "SELECT tile_column, tile_row, tile_data FROM tiles WHERE zoom_level = ? "
                    "AND tile_column BETWEEN ? AND ? AND tile_row BETWEEN ? AND ?",
                    (
                        z,
                        trange.x_min,
                        trange.x_max,
                        tms_row(trange.y_max, z),
                        tms_row(trange.y_min, z),
                    ),
                )
            }
        except sqlite3.Error as exc:
            return BlockImageResult(
                status="failed",
                reason=f"MBTiles query failed: {exc}",
                width=raster.width,
                height=raster.height,
                tiles_total=n,
            )
        finally:
            con.close()
        for x, y in coords:
            data = rows.get((x, tms_row(y, z)))
            if data is None:
                tiles[(x, y)] = None
                continue
            try:
                tiles[(x, y)] = decode_tile(bytes(data), tile_size=cfg.tile_size)
            except TileDecodeError:
                corrupt += 1
        n_ok = sum(t is not None for t in tiles.values())
        n_absent = n - n_ok - corrupt
        if corrupt:
            return BlockImageResult(
                status="failed",
                reason=f"corrupt image for {corrupt} of {n} tiles",
                width=raster.width,
                height=raster.height,
                tiles_total=n,
                tiles_ok=n_ok,
                tiles_absent=n_absent,
                tiles_failed=corrupt,
            )
        if n_ok == 0:
            return BlockImageResult(
                status="missing",
                reason=f"no tiles at z{z} for the block",
                width=raster.width,
                height=raster.height,
                tiles_total=n,
                tiles_ok=n_ok,
                tiles_absent=n_absent,
            )
        rgb, valid = assemble_block(
            tiles, trange, raster, tile_size=cfg.tile_size, resampling=cfg.resampling
        )
        notes = [f"tile absent for {n_absent} of {n} tiles"] if n_absent else []
        return finish_block(
            rgb=rgb,
            valid=valid,
            raster=raster,
            dest=dest,
            tiles_total=n,
            tiles_ok=n_ok,
            tiles_absent=n_absent,
            notes=notes,
        )


def build_mbtiles(config: MbtilesConfig, secrets: Mapping[str, str]) -> MbtilesSource:
    return MbtilesSource(config)
