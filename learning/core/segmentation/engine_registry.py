"""The segmentation engines by name: each engine module registers its class here when it is
imported (``register_engine``). Apart from ``engine`` (the protocol and the lookups that import
the built-in engines on first use), so that an engine module imports this and nothing that
imports it back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ENGINES: dict[str, type[Any]] = {}


def register_engine(name: str) -> Callable[[type[Any]], type[Any]]:
    """Class decorator: make an engine available as ``get_engine(name)`` and by bundle kind."""

    def deco(cls: type[Any]) -> type[Any]:
        if name in ENGINES and ENGINES[name] is not cls:
            raise ValueError(f"segmentation engine {name!r} is already registered")
        ENGINES[name] = cls
        return cls

    return deco
