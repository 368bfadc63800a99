"""Segmentation training data: polygon rasterising, random crops, augmentation, balanced sampling.

A sample is ``(image, mask)``: image ``H×W×3`` uint8 RGB, mask ``H×W`` uint8 with 1 cropland,
0 background and 255 ignore (never scored, never learned).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt
from affine import Affine
from rasterio import features
from shapely.geometry.base import BaseGeometry

IGNORE = 255
Sample = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


def rasterize_polygons(polygons: Iterable[BaseGeometry], *, transform: Affine,
                       shape: tuple[int, int], ignore: Iterable[BaseGeometry] = (),
                       ignore_value: int = IGNORE, all_touched: bool = False,
                       ) -> npt.NDArray[np.uint8]:
    """Burn cropland polygons (1) onto a block's pixel grid, background 0.

    ``polygons`` and ``ignore`` are in the block's lon/lat coordinates and ``transform`` maps
    pixel (col, row) to lon/lat, as in the block GeoTIFF. ``ignore`` areas (e.g. orchards, or
    parts nobody interpreted) are burnt last with ``ignore_value`` so they win over cropland.
    """
    mask = np.zeros(shape, dtype=np.uint8)
    shapes = [(g, 1) for g in polygons if g is not None and not g.is_empty]
    if shapes:
        features.rasterize(shapes, out=mask, transform=transform, all_touched=all_touched,
                           dtype="uint8")
    ign = [(g, ignore_value) for g in ignore if g is not None and not g.is_empty]
    if ign:
        features.rasterize(ign, out=mask, transform=transform, all_touched=all_touched,
                           dtype="uint8")
    return mask


def validate_sample(image: npt.NDArray[np.generic], mask: npt.NDArray[np.generic]) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be H×W×3 uint8, got shape {image.shape} dtype {image.dtype}")
    if mask.shape != image.shape[:2] or mask.dtype != np.uint8:
        raise ValueError(f"mask must be H×W uint8 matching the image, got {mask.shape} "
                         f"{mask.dtype}")
    bad = np.setdiff1d(np.unique(mask), [0, 1, IGNORE])
    if bad.size:
        raise ValueError(f"mask values must be 0, 1 or {IGNORE}; found {bad.tolist()}")


def pad_to(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8], size: int) -> Sample:
    """Pad a sample smaller than ``size`` with black image and ignore mask (bottom/right)."""
    h, w = mask.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return image, mask
    image = np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=0)
    mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
    return image, mask


def augment(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8], rng: np.random.Generator,
            *, jitter: float = 0.2, photometric: float = 0.0) -> Sample:
    """Random flips and 90° rotations (same on image and mask) and colour jitter (image only).

    ``photometric`` (0 off, 1 full) adds what differs between sensors and acquisitions: a gain
    per channel (±10 %), a gamma (0.7–1.4), a hue rotation, sensor noise and a slight blur.
    """
    k = int(rng.integers(4))
    image, mask = np.rot90(image, k), np.rot90(mask, k)
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if jitter > 0 or photometric > 0:
        x = image.astype(np.float32)
        if jitter > 0:
            brightness = 1.0 + rng.uniform(-jitter, jitter)
            contrast = 1.0 + rng.uniform(-jitter, jitter)
            saturation = 1.0 + rng.uniform(-jitter, jitter)
            grey = x.mean(axis=2, keepdims=True)
            x = grey + (x - grey) * saturation
            x = (x - x.mean()) * contrast + x.mean()
            x = x * brightness
        if photometric > 0:
            x = _photometric(x, rng, photometric)
        image = np.clip(x, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _photometric(x: npt.NDArray[np.float32], rng: np.random.Generator,
                 strength: float) -> npt.NDArray[np.float32]:
    x = x * (1.0 + strength * rng.uniform(-0.1, 0.1, size=3)).astype(np.float32)
    gamma = float(np.exp(strength * rng.uniform(np.log(0.7), np.log(1.4))))
    x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** gamma
    if rng.random() < 0.5 * strength:
        # Hue rotation: rotate the chroma around the grey axis by up to ±15°.
        a = np.deg2rad(rng.uniform(-15, 15))
        c, s_, k = np.cos(a), np.sin(a), 1.0 / 3.0
        r = np.sqrt(k)
        m = np.array([[c + (1 - c) * k, k * (1 - c) - r * s_, k * (1 - c) + r * s_],
                      [k * (1 - c) + r * s_, c + (1 - c) * k, k * (1 - c) - r * s_],
                      [k * (1 - c) - r * s_, k * (1 - c) + r * s_, c + (1 - c) * k]],
                     dtype=np.float32)
        x = x @ m.T
    if rng.random() < 0.3 * strength:
        x = np.asarray(cv2.GaussianBlur(x, (3, 3), float(rng.uniform(0.3, 1.0))),
                       dtype=np.float32)
    if rng.random() < 0.5 * strength:
        x = x + rng.normal(0.0, rng.uniform(1.0, 6.0), size=x.shape).astype(np.float32)
    return x


def rescale_crop(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8], size: int,
                 scale: float, rng: np.random.Generator) -> Sample:
    """A ``size``² crop of the sample seen at ``scale``× (>1 zooms in): a square of
    ``size / scale`` pixels at a random place, resized (area/linear for the image, nearest for
    the mask); parts beyond the sample are black with ignore labels."""
    src = max(8, int(round(size / scale)))
    image, mask = pad_to(image, mask, src)
    h, w = mask.shape
    y, x = int(rng.integers(h - src + 1)), int(rng.integers(w - src + 1))
    img, m = image[y:y + src, x:x + src], mask[y:y + src, x:x + src]
    if src != size:
        interp = cv2.INTER_AREA if src > size else cv2.INTER_LINEAR
        img = np.asarray(cv2.resize(np.ascontiguousarray(img), (size, size),
                                    interpolation=interp), dtype=np.uint8)
        m = np.asarray(cv2.resize(np.ascontiguousarray(m), (size, size),
                                  interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
    return img, m


@dataclass
class CropSampler:
    """Draws augmented fixed-size crops; with ``balance`` the minority class is oversampled.

    Balancing works at two levels: samples holding the minority class (cropland in most
    regions, background in plains) are drawn about as often as the rest, and for them the crop
    position is retried a few times to land on minority pixels.
    """

    samples: Sequence[Sample]
    crop_size: int
    balance: bool = True
    jitter: float = 0.2
    tries: int = 5
    # Random zoom: each crop is seen at a scale drawn log-uniformly in this range (None: 1×).
    scale_range: tuple[float, float] | None = None
    photometric: float = 0.0
    # Relative draw weight per sample (for example to show a small data set more often).
    sample_weights: Sequence[float] | None = None
    _minority: int = field(init=False, default=1)
    _weights: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("no training samples")
        counts = np.zeros(2, dtype=np.int64)
        has = np.zeros((len(self.samples), 2), dtype=bool)
        for i, (img, m) in enumerate(self.samples):
            validate_sample(img, m)
            c = np.array([np.count_nonzero(m == 0), np.count_nonzero(m == 1)])
            counts += c
            has[i] = c > 0
        self._minority = int(np.argmin(counts))
        w = np.ones(len(self.samples))
        if self.sample_weights is not None:
            if len(self.sample_weights) != len(self.samples):
                raise ValueError("sample_weights needs one weight per sample")
            sw = np.asarray(self.sample_weights, dtype=np.float64)
            if not np.all(sw >= 0) or sw.sum() <= 0:
                raise ValueError("sample_weights must be non-negative with a positive sum")
        else:
            sw = np.ones(len(self.samples))
        if self.balance:
            holds = has[:, self._minority]
            n_with = int(holds.sum())
            if 0 < n_with < len(self.samples):
                # Samples holding the minority class get at least half of the draws.
                w[holds] = max(1.0, (len(self.samples) - n_with) / n_with)
        w = w * sw
        self._weights = w / w.sum()

    @property
    def minority_class(self) -> int:
        return self._minority

    def draw(self, rng: np.random.Generator, n: int) -> tuple[npt.NDArray[np.uint8],
                                                              npt.NDArray[np.uint8]]:
        """``n`` crops as arrays ``n×S×S×3`` and ``n×S×S``."""
        s = self.crop_size
        imgs = np.empty((n, s, s, 3), dtype=np.uint8)
        masks = np.empty((n, s, s), dtype=np.uint8)
        for j in range(n):
            i = int(rng.choice(len(self.samples), p=self._weights))
            if self.scale_range is not None:
                lo, hi = self.scale_range
                scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
                img0, m0 = self.samples[i]
                want = self.balance and bool(np.any(m0 == self._minority))
                for t in range(self.tries if want else 1):
                    ci, cm = rescale_crop(img0, m0, s, scale, rng)
                    if not want or t == self.tries - 1 or np.any(cm == self._minority):
                        break
            else:
                img, m = pad_to(*self.samples[i], s)
                h, w = m.shape
                want = self.balance and bool(np.any(m == self._minority))
                for t in range(self.tries if want else 1):
                    y, x = int(rng.integers(h - s + 1)), int(rng.integers(w - s + 1))
                    cm = m[y:y + s, x:x + s]
                    if not want or t == self.tries - 1 or np.any(cm == self._minority):
                        break
                ci = img[y:y + s, x:x + s]
            imgs[j], masks[j] = augment(ci, cm, rng, jitter=self.jitter,
                                        photometric=self.photometric)
        return imgs, masks
