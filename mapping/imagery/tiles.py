"""Decoding of 256² map tiles (PNG, JPEG, WebP) into RGBA arrays, with strict checks."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/webp": (b"RIFF",),
}


class TileDecodeError(ValueError):
    """The bytes are not a usable tile image."""


def sniff_media_type(data: bytes) -> str | None:
    for mt, magics in MAGIC.items():
        if any(data.startswith(m) for m in magics):
            if mt == "image/webp" and data[8:12] != b"WEBP":
                continue
            return mt
    return None


def decode_tile(
    data: bytes, *, tile_size: int = 256, media_type: str | None = None
) -> npt.NDArray[np.uint8]:
    """Decode a tile to (tile_size, tile_size, 4) uint8 RGBA or raise :class:`TileDecodeError`.

    When ``media_type`` is given the bytes must really be of that type (a server that labels
    HTML as image/png is caught here).
    """
    sniffed = sniff_media_type(data)
    if sniffed is None:
        raise TileDecodeError("corrupt image (not PNG, JPEG or WebP data)")
    if media_type is not None and sniffed != media_type:
        raise TileDecodeError(f"corrupt image (labelled {media_type}, data is {sniffed})")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise TileDecodeError("corrupt image (cannot be decoded)")
    if arr.dtype != np.uint8:
        # 16-bit PNGs are not map tiles; scale rather than reject.
        arr = (arr // 257).astype(np.uint8) if arr.dtype == np.uint16 else None
        if arr is None:
            raise TileDecodeError("corrupt image (unsupported sample type)")
    if arr.ndim == 2:
        rgba = cv2.cvtColor(arr, cv2.COLOR_GRAY2RGBA)
    elif arr.shape[2] == 3:
        rgba = cv2.cvtColor(arr, cv2.COLOR_BGR2RGBA)
    elif arr.shape[2] == 4:
        rgba = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    else:
        raise TileDecodeError(f"corrupt image ({arr.shape[2]} channels)")
    if rgba.shape[:2] != (tile_size, tile_size):
        raise TileDecodeError(
            f"unexpected tile size {rgba.shape[1]}x{rgba.shape[0]} "
            f"(expected {tile_size}x{tile_size})"
        )
    # A truncated JPEG decodes with a warning and grey rows; PNG/WebP fail outright. Catch the
    # JPEG case by requiring the end-of-image marker.
    if sniffed == "image/jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise TileDecodeError("corrupt image (truncated JPEG)")
    return np.ascontiguousarray(rgba)
