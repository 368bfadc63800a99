"""Model bundles: one self-describing folder per trained model, written atomically.

A bundle holds ``manifest.json`` (kind, code version, created time, file checksums) plus
whatever files the model kind needs (weights, config, class map, normalisation, metrics).
It is assembled in a temporary sibling folder and moved into place with ``os.replace``, so a
reader sees either no bundle or a complete one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class BundleError(Exception):
    """A bundle is missing, incomplete, corrupt or of the wrong kind."""


def code_version() -> str:
    """The git commit of the code that made a bundle, or 'unknown' outside a checkout."""
    env = os.environ.get("CROPLAYER_CODE_VERSION")
    if env:
        return env
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    def file(self, name: str) -> Path:
        p = self.path / name
        if not p.is_file():
            raise BundleError(f"bundle {self.path} has no file {name!r}")
        return p

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.file(name).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise BundleError(f"bundle {self.path}: {name} is not valid JSON ({e})") from e


@contextmanager
def bundle_writer(dest: str | os.PathLike[str], *, kind: str, overwrite: bool = False,
                  extra: dict[str, Any] | None = None) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it becomes ``dest`` with a manifest.

    On any exception the temporary folder is removed and ``dest`` is left untouched.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "code_version": code_version(),
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "files": {str(p.relative_to(tmp)): _sha256(p) for p in files},
            **(extra or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def bundle_open(path: str | os.PathLike[str], *, kind: str | None = None,
                verify: bool = True) -> Bundle:
    """Open a bundle, checking its manifest, kind and (by default) every file's checksum."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{path} is not a model bundle (no {MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: corrupt manifest ({e})") from e
    if not isinstance(manifest, dict) or "kind" not in manifest or "files" not in manifest:
        raise BundleError(f"{path}: manifest lacks kind/files")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: unsupported bundle format {manifest.get('format_version')}")
    if kind is not None and manifest["kind"] != kind:
        raise BundleError(f"{path} is a {manifest['kind']!r} bundle, expected {kind!r}")
    if verify:
        for name, digest in manifest["files"].items():
            f = path / name
            if not f.is_file():
                raise BundleError(f"{path}: file {name} listed in the manifest is missing")
            if _sha256(f) != digest:
                raise BundleError(f"{path}: file {name} is corrupt (checksum mismatch)")
    return Bundle(path=path, manifest=manifest)
