"""Which raster values of an existing product mean cropland: a list of values and/or ranges.

Written on the command line as ``40`` (ESA WorldCover), ``10,11,12``, ``1-3`` or ``1-3,7``; a
range is inclusive at both ends. Stored as JSON ``{"values": [...], "ranges": [[lo, hi], ...]}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ClassMapping:
    """Cropland classes of a product: exact values and inclusive ranges."""

    values: tuple[float, ...] = ()
    ranges: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.values and not self.ranges:
            raise ValueError("give at least one cropland class value or range")
        for v in self.values:
            if not math.isfinite(v):
                raise ValueError(f"class value {v} is not a finite number")
        for lo, hi in self.ranges:
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise ValueError(f"class range {lo}-{hi} is not a range (low <= high)")

    @classmethod
    def parse(cls, text: str) -> ClassMapping:
        """``"40"``, ``"10,11"``, ``"1-3,7"`` (ranges inclusive; negative values as ``-5--1``)."""
        values: list[float] = []
        ranges: list[tuple[float, float]] = []
        parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
        if not parts:
            raise ValueError("give at least one cropland class value or range")
        for part in parts:
            # A '-' after the first character separates a range; a leading '-' is a sign.
            cut = part.find("-", 1)
            try:
                if cut > 0:
                    ranges.append((float(part[:cut]), float(part[cut + 1 :])))
                else:
                    values.append(float(part))
            except ValueError as e:
                raise ValueError(
                    f"not a class value or range: {part!r} (expected like 40, 10-12)"
                ) from e
        return cls(values=tuple(values), ranges=tuple(ranges))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassMapping:
        return cls(
            values=tuple(float(v) for v in data.get("values", [])),
            ranges=tuple((float(lo), float(hi)) for lo, hi in data.get("ranges", [])),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "values": [_plain(v) for v in self.values],
            "ranges": [[_plain(lo), _plain(hi)] for lo, hi in self.ranges],
        }

    def __str__(self) -> str:
        items = [_fmt(v) for v in self.values]
        items += [f"{_fmt(lo)}-{_fmt(hi)}" for lo, hi in self.ranges]
        return ",".join(items)

    def cropland(self, values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """True where a raster value is one of the cropland classes."""
        out = np.isin(values, np.asarray(self.values, dtype=np.float64)) if self.values else (
            np.zeros(values.shape, dtype=bool)
        )
        for lo, hi in self.ranges:
            out |= (values >= lo) & (values <= hi)
        return np.asarray(out, dtype=bool)

    def problems_for_dtype(self, dtype: np.dtype[Any]) -> list[str]:
        """Class values no pixel of this data type can hold (300 in uint8, 40.5 in int16)."""
        if dtype.kind not in "iu":
            return []
        info = np.iinfo(dtype)
        out = []
        for v in self.values:
            if v != int(v):
                out.append(f"class {_fmt(v)} is not a whole number but the raster is {dtype}")
            elif not info.min <= v <= info.max:
                out.append(
                    f"class {_fmt(v)} is outside the range of {dtype} ({info.min}..{info.max})"
                )
        for lo, hi in self.ranges:
            if hi < info.min or lo > info.max or math.floor(hi) < math.ceil(lo):
                out.append(f"class range {_fmt(lo)}-{_fmt(hi)} holds no {dtype} value")
        return out

    def found_in(self, unique_values: npt.NDArray[Any]) -> list[str]:
        """The cropland classes (as text) that occur among ``unique_values``."""
        found = [_fmt(v) for v in self.values if np.any(unique_values == v)]
        found += [
            f"{_fmt(lo)}-{_fmt(hi)}"
            for lo, hi in self.ranges
            if np.any((unique_values >= lo) & (unique_values <= hi))
        ]
        return found


def _plain(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def _fmt(v: float) -> str:
    return str(_plain(v))
