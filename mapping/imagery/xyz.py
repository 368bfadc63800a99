"""XYZ tile sources (Mapbox, Google): fetch a block's z16 tiles over HTTPS, cache, mosaic, warp.

The access token lives only in the environment variable named by ``token_env``; it is put into
the URL at request time and never stored in the config, a reason string or a log line
(urllib3's own debug logging is filtered, see :class:`_RedactSecrets`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, urljoin, urlsplit

import numpy as np
import numpy.typing as npt
import urllib3
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mapping.geo.grid import BlockId, BlockRaster, tile_range
from mapping.geo.mosaic import assemble_block
from mapping.imagery.base import BlockImageResult, finish_block
from mapping.imagery.security import (
    IMAGE_CONTENT_TYPES,
    check_url_template,
    media_type,
    same_origin,
    template_placeholders,
)
from mapping.imagery.tiles import TileDecodeError, decode_tile

log = logging.getLogger(__name__)

DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = (
    "api.mapbox.com",
    "*.tiles.mapbox.com",
    "mt0.google.com",
    "mt1.google.com",
    "mt2.google.com",
    "mt3.google.com",
    "tile.googleapis.com",
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ABSENT_STATUSES = frozenset({404, 204})
MAX_REDIRECTS = 3
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
# Query keys that carry credentials: a literal value there means a token was pasted into the
# template instead of being read from the environment.
_SECRET_QUERY_KEYS = frozenset({"access_token", "key", "token", "apikey", "api_key"})


class XyzConfig(BaseModel):
    """An XYZ (slippy-map) tile source. Validation context ``allowed_hosts`` (site-wide
    allow-list) further restricts the hosts when given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["xyz"] = "xyz"
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="cache key, e.g. mapbox")
    url_template: str = Field(max_length=2000, description="https URL with {z} {x} {y} [{token}]")
    zoom: int = Field(16, ge=0, le=22)
    token_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    allow_loopback_http: bool = False
    max_concurrency: int = Field(8, ge=1, le=64)
    timeout_s: float = Field(10.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0, le=60)
    max_backoff_s: float = Field(30.0, ge=0, le=600)
    cache_dir: str | None = None
    resampling: Literal["bilinear", "cubic"] = "bilinear"
    tile_size: int = Field(256, ge=64, le=1024)
    max_tile_bytes: int = Field(4_000_000, ge=1024)
    # Printable ASCII only: a CR or LF would end the header and start another one.
    user_agent: str = Field(
        "croplayer/0.1 (+block imagery)", min_length=1, max_length=200, pattern=r"^[ -~]+$"
    )

    @field_validator("url_template")
    @classmethod
    def _no_literal_secret(cls, v: str) -> str:
        query = urlsplit(v).query
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key.lower() in _SECRET_QUERY_KEYS and value != "{token}":
                raise ValueError(
                    f"query parameter {key!r} must be the {{token}} placeholder; put the token "
                    "in the environment variable named by token_env"
                )
        return v

    @model_validator(mode="after")
    def _token_consistent(self) -> XyzConfig:
        has_token = "token" in template_placeholders(self.url_template)
        if has_token and not self.token_env:
            raise ValueError("URL template has {token} but token_env is not set")
        if self.token_env and not has_token:
            raise ValueError("token_env is set but the URL template has no {token} placeholder")
        return self

    # A model validator, not a field one: the check needs allowed_hosts and allow_loopback_http.
    @model_validator(mode="after")
    def _template_safe(self, info: ValidationInfo) -> XyzConfig:
        allowed: tuple[str, ...] = self.allowed_hosts
        site = (info.context or {}).get("allowed_hosts")
        if site is not None:
            allowed = tuple(h for h in allowed if h in set(site))
        check_url_template(
            self.url_template,
            allowed_hosts=allowed,
            allow_loopback_http=self.allow_loopback_http,
        )
        return self


# --- secret redaction in logs -----------------------------------------------------------------

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


class _RedactSecrets(logging.Filter):
    """Replace registered tokens in log records (urllib3 logs request URLs at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _SECRETS_LOCK:
            secrets = tuple(_SECRETS)
        if not secrets:
            return True
        msg = record.getMessage()
        hit = False
        for s in secrets:
            if s in msg:
                msg = msg.replace(s, "***")
                hit = True
        if hit:
            record.msg, record.args = msg, None
        return True


_REDACTOR = _RedactSecrets()
for _name in (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    __name__,
):
    logging.getLogger(_name).addFilter(_REDACTOR)


def _register_secret(token: str) -> None:
    with _SECRETS_LOCK:
        _SECRETS.update({token, quote(token, safe="")})


# --- fetching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileOutcome:
    kind: Literal["ok", "absent", "failed"]
    rgba: npt.NDArray[np.uint8] | None = None
    reason: str = ""  # short key, aggregated per block ("upstream HTTP 500", "timeout")
    from_cache: bool = False


class XyzSource:
    kind = "xyz"

    def __init__(self, config: XyzConfig, *, token: str | None = None) -> None:
        if config.token_env and not token:
            raise ValueError(f"environment variable {config.token_env} (tile token) is not set")
        self.config = config
        self.slug = config.slug
        self._token = token
        if token:
            _register_secret(token)
        self._http = urllib3.PoolManager(
            num_pools=4,
            maxsize=config.max_concurrency,
            retries=False,
            timeout=urllib3.Timeout(connect=config.timeout_s, read=config.timeout_s),
            headers={"User-Agent": config.user_agent},
        )
        # Bounds requests in flight across every caller of this source instance.
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._pool = ThreadPoolExecutor(
            config.max_concurrency, thread_name_prefix=f"xyz-{self.slug}"
        )
        # Tiles are cached per source and URL template, so changing the template (another
        # imagery version or host) never serves tiles fetched from the old one.
        template_key = hashlib.sha256(config.url_template.encode()).hexdigest()[:12]
        self._cache = (
            Path(config.cache_dir) / f"{config.slug}-{template_key}" if config.cache_dir else None
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.clear()

    def __enter__(self) -> XyzSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public --

    def fetch_block(self, block: BlockId, raster: BlockRaster, dest: Path) -> BlockImageResult:
        z = self.config.zoom
        trange = tile_range((raster.west, raster.south, raster.east, raster.north), z)
        coords = trange.tiles()
        outcomes = list(self._pool.map(lambda xy: self.fetch_tile(z, xy[0], xy[1]), coords))
        n = len(coords)
        failed = Counter(o.reason for o in outcomes if o.kind == "failed")
        absent = Counter(o.reason for o in outcomes if o.kind == "absent")
        n_ok = sum(o.kind == "ok" for o in outcomes)
        n_absent = sum(absent.values())
        n_failed = sum(failed.values())
        if failed:
            reason = "; ".join(f"{k} for {c} of {n} tiles" for k, c in failed.most_common())
            log.info("xyz %s block %s failed: %s", self.slug, block, reason)
            return BlockImageResult(
                status="failed",
                reason=reason,
                width=raster.width,
                height=raster.height,
                tiles_total=n,
                tiles_ok=n_ok,
                tiles_absent=n_absent,
                tiles_failed=n_failed,
            )
        notes = [f"{k} for {c} of {n} tiles" for k, c in absent.most_common()]
        if n_ok == 0:
            return BlockImageResult(
                status="missing",
                reason="; ".join(notes),
                width=raster.width,
                height=raster.height,
                tiles_total=n,
                tiles_ok=n_ok,
                tiles_absent=n_absent,
                tiles_failed=n_failed,
            )
        tiles = {xy: o.rgba for xy, o in zip(coords, outcomes, strict=True)}
        rgb, valid = assemble_block(
            tiles,
            trange,
            raster,
            tile_size=self.config.tile_size,
            resampling=self.config.resampling,
        )
        result = finish_block(
            rgb=rgb,
            valid=valid,
            raster=raster,
            dest=dest,
            notes=notes,
            tiles_total=n,
            tiles_ok=n_ok,
            tiles_absent=n_absent,
        )
        log.info("xyz %s block %s: %s (%s)", self.slug, block, result.status, result.reason)
        return result

    def fetch_tile(self, z: int, x: int, y: int) -> TileOutcome:
        """One tile: from the cache, else over HTTP with retries. Never raises for upstream."""
        cached = self._cache_read(z, x, y)
        if cached is not None:
            return TileOutcome("ok", cached, from_cache=True)
        url = self.config.url_template.format(
            z=z, x=x, y=y, token=quote(self._token or "", safe="")
        )
        outcome, body, mt = self._get(url)
        if outcome is not None:
            if outcome.kind == "failed":
                log.debug("xyz %s tile %s/%s/%s: %s", self.slug, z, x, y, outcome.reason)
            return outcome
        assert body is not None and mt is not None
        try:
            rgba = decode_tile(body, tile_size=self.config.tile_size, media_type=mt)
        except TileDecodeError as exc:
            return TileOutcome("failed", reason=str(exc))
        self._cache_write(z, x, y, body, mt)
        return TileOutcome("ok", rgba)

    # -- HTTP --

    def _get(self, url: str) -> tuple[TileOutcome | None, bytes | None, str | None]:
        cfg = self.config
        last = "no attempt"
        redirects = 0
        attempt = 0
        while attempt <= cfg.retries:
            wait = cfg.backoff_s * 2**attempt
            try:
                with self._slots:
                    resp = self._http.request(
                        "GET", url, redirect=False, preload_content=False, retries=False
                    )
                    try:
                        status = resp.status
                        if status == 200:
                            mt = media_type(resp.headers.get("Content-Type"))
                            if mt not in IMAGE_CONTENT_TYPES:
                                shown = "".join(c for c in mt[:40] if c.isprintable()) or "(none)"
                                return (
                                    TileOutcome("failed", reason=f"wrong content type {shown}"),
                                    None,
                                    None,
                                )
                            body = resp.read(cfg.max_tile_bytes + 1)
                            if len(body) > cfg.max_tile_bytes:
                                return TileOutcome("failed", reason="tile too large"), None, None
                            return None, body, mt
                        location = resp.headers.get("Location")
                        retry_after = resp.headers.get("Retry-After")
                    finally:
                        resp.close()
                        resp.release_conn()
            except urllib3.exceptions.TimeoutError:
                last = "timeout"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                # The exception text holds the URL (and so the token): report the type only.
                last = f"connection error ({type(exc).__name__})"
            else:
                if status in ABSENT_STATUSES:
                    return TileOutcome("absent", reason=f"upstream HTTP {status}"), None, None
                if 300 <= status < 400:
                    target = urljoin(url, location or "")
                    if not location or not same_origin(url, target):
                        return (
                            TileOutcome("failed", reason="redirect to another host refused"),
                            None,
                            None,
                        )
                    redirects += 1
                    if redirects > MAX_REDIRECTS:
                        return TileOutcome("failed", reason="too many redirects"), None, None
                    url = target
                    continue
                last = f"upstream HTTP {status}"
                if status not in RETRY_STATUSES:
                    return TileOutcome("failed", reason=last), None, None
                if status == 429 and retry_after and retry_after.strip().isdigit():
                    wait = max(wait, float(retry_after))
            attempt += 1
            if attempt <= cfg.retries:
                time.sleep(min(wait, cfg.max_backoff_s))
        return TileOutcome("failed", reason=last), None, None

    # -- cache --

    def _cache_base(self, z: int, x: int, y: int) -> Path | None:
        return self._cache / str(z) / str(x) / str(y) if self._cache else None

    def _cache_read(self, z: int, x: int, y: int) -> npt.NDArray[np.uint8] | None:
        base = self._cache_base(z, x, y)
        if base is None:
            return None
        for mt, ext in _EXT.items():
            p = base.with_suffix(f".{ext}")
            if p.is_file():
                try:
                    return decode_tile(
                        p.read_bytes(), tile_size=self.config.tile_size, media_type=mt
                    )
                except (TileDecodeError, OSError):
                    p.unlink(missing_ok=True)  # a damaged cache entry is refetched
        return None

    def _cache_write(self, z: int, x: int, y: int, body: bytes, mt: str) -> None:
        base = self._cache_base(z, x, y)
        if base is None:
            return
        p = base.with_suffix(f".{_EXT[mt]}")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(body)
            os.replace(tmp, p)
        except OSError as exc:
            log.warning("xyz %s: cannot write tile cache (%s)", self.slug, type(exc).__name__)


def build_xyz(config: XyzConfig, secrets: Mapping[str, str]) -> XyzSource:
    token = secrets.get(config.token_env) if config.token_env else None
    return XyzSource(config, token=token)
