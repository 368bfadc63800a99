"""Imagery source registry: validate a typed config by kind and build the source."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from mapping.imagery.base import ImagerySource
from mapping.imagery.geotiff import GeoTiffConfig, build_geotiff
from mapping.imagery.mbtiles import MbtilesConfig, build_mbtiles
from mapping.imagery.synthetic import SyntheticConfig, build_synthetic
from mapping.imagery.xyz import XyzConfig, build_xyz

_Builder = Callable[[Any, Mapping[str, str]], ImagerySource]
KINDS: dict[str, tuple[type[BaseModel], _Builder]] = {
    "xyz": (XyzConfig, build_xyz),
    "geotiff": (GeoTiffConfig, build_geotiff),
    "mbtiles": (MbtilesConfig, build_mbtiles),
    "synthetic": (SyntheticConfig, build_synthetic),
}


def parse_source_config(
    kind: str, config: Mapping[str, Any], *, allowed_hosts: Collection[str] | None = None
) -> BaseModel:
    """Validate a config dict for ``kind``; raises ``pydantic.ValidationError`` or ``ValueError``.

    ``allowed_hosts`` is the site-wide host allow-list; an XYZ template's host must be on it
    (as well as on the config's own ``allowed_hosts``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown imagery source kind {kind!r}; known: {sorted(KINDS)}")
    model, _ = KINDS[kind]
    data = dict(config)
    if data.setdefault("kind", kind) != kind:
        raise ValueError(f"config kind {data['kind']!r} does not match {kind!r}")
    context = {"allowed_hosts": tuple(allowed_hosts)} if allowed_hosts is not None else None
    return model.model_validate(data, context=context)


def config_error_text(error: ValueError) -> str:
    """A config error as the person editing the config should read it: one line per problem,
    the field and what is wrong with it, never pydantic's dump of the whole input (which
    repeats the config, headers and all, back into the form)."""
    if not isinstance(error, ValidationError):
        return str(error)
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in problem.get("loc", ()))
        message = str(problem.get("msg", "invalid"))
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines) or "invalid config"


def build_source(
    kind: str,
    config: Mapping[str, Any],
    *,
    secrets: Mapping[str, str],
    allowed_hosts: Collection[str] | None = None,
) -> ImagerySource:
    """Validate ``config`` and build the source. ``secrets`` is the environment (tokens are read
    from the variable named by an XYZ config's ``token_env``); nothing from it is stored in the
    config. Raises ``ValueError`` (incl. pydantic's ``ValidationError``) for a bad config or a
    missing token."""
    cfg = parse_source_config(kind, config, allowed_hosts=allowed_hosts)
    return KINDS[kind][1](cfg, secrets)


def source_config_schema(kind: str) -> dict[str, Any]:
    """JSON schema of a kind's config (for forms and docs)."""
    return KINDS[kind][0].model_json_schema()
