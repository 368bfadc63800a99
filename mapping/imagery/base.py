"""The imagery source interface: fetch one block as a georeferenced GeoTIFF, report the outcome.

Every source writes the block image convention of :mod:`mapping.geo.raster` (EPSG:4326 block
grid, 3-band uint8 RGB, internal mask 0 = no data) and never raises for upstream problems:
it returns a :class:`BlockImageResult` with ``status`` and a human-readable ``reason``.
Programming errors (a raster of the wrong shape, a bad destination folder) still raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from mapping.geo.grid import BlockId, BlockRaster
from mapping.geo.raster import write_block_image

Status = Literal["ok", "missing", "failed"]


@dataclass(frozen=True)
class BlockImageResult:
    """Outcome of one block fetch.

    ``ok``: a GeoTIFF was written at ``path`` (maybe partly no data; ``reason`` says why).
    ``missing``: the source has no imagery for this block; nothing written.
    ``failed``: an upstream or data problem (HTTP errors, timeouts, corrupt data); nothing
    written, worth retrying later.
    """

    status: Status
    reason: str
    path: Path | None = None
    sha256: str | None = None
    width: int = 0
    height: int = 0
    tiles_total: int = 0
    tiles_ok: int = 0
    tiles_absent: int = 0
    tiles_failed: int = 0
    valid_fraction: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@runtime_checkable
class ImagerySource(Protocol):
    kind: str
    slug: str

    def fetch_block(self, block: BlockId, raster: BlockRaster, dest: Path) -> BlockImageResult:
        """Write the block image to ``dest`` (atomically) and report the outcome."""
        ...

    def close(self) -> None:
        """Release pools and file handles (safe to call twice)."""
        ...


def finish_block(
    *,
    rgb: npt.NDArray[np.uint8],
    valid: npt.NDArray[np.bool_],
    raster: BlockRaster,
    dest: Path,
    tiles_total: int = 0,
    tiles_ok: int = 0,
    tiles_absent: int = 0,
    notes: list[str] | None = None,
    missing_reason: str = "no imagery covers the block",
) -> BlockImageResult:
    """Write the image (or report ``missing`` when no pixel is valid) and build the result."""
    frac = float(valid.mean()) if valid.size else 0.0
    if not valid.any():
        return BlockImageResult(
            status="missing",
            reason=missing_reason,
            width=raster.width,
            height=raster.height,
            tiles_total=tiles_total,
            tiles_ok=tiles_ok,
            tiles_absent=tiles_absent,
        )
    sha = write_block_image(dest, rgb, valid, raster)
    parts = list(notes or [])
    if frac < 1.0:
        parts.append(f"{100 * (1 - frac):.1f}% of the block has no data")
    return BlockImageResult(
        status="ok",
        reason="; ".join(parts) or "complete",
        path=Path(dest),
        sha256=sha,
        width=raster.width,
        height=raster.height,
        tiles_total=tiles_total,
        tiles_ok=tiles_ok,
        tiles_absent=tiles_absent,
        valid_fraction=frac,
    )
