"""Opening user files with GDAL: magic bytes, an allow-list of drivers, read-only, no network.

Every file a user hands to croplayer (an upload or a path on a command line) is opened here and
nowhere else. GDAL would otherwise open anything it can read: a VRT saved as ``.tif`` or
``.geojson`` reads other files on the server byte by byte (``VRTRawRasterBand``) or fetches a
``/vsicurl/`` URL. So a file is opened only when

1. it is a regular local file (no ``/vsi...`` path, no ``scheme://``, no ``DRIVER:`` prefix)
   under a size limit, and its first bytes are those of an allowed format;
2. a zip holds only the parts of one Shapefile (checked on the archive's directory: no
   absolute or ``..`` path, no link, member count, size and compression limits) and is
   extracted with the byte budget enforced on the bytes written;
3. GDAL picks an allowed driver for it (GTiff for rasters, COGs included; GPKG, GeoJSON, ESRI
   Shapefile for vectors), asked before and checked after opening, read-only;
4. GDAL runs with network file systems and VRT raw bands refused (:func:`gdal_guard`).

Each refusal is one :class:`UnsafeFile` whose ``reason`` a user can act on and which never
shows server paths.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import os
import re
import secrets
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyogrio
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader

GTIFF = "GTiff"
GPKG, GEOJSON, SHAPEFILE = "GPKG", "GeoJSON", "ESRI Shapefile"
RASTER_DRIVERS: tuple[str, ...] = (GTIFF,)  # a COG is a GeoTIFF; GDAL's COG driver only writes
VECTOR_DRIVERS: tuple[str, ...] = (GPKG, GEOJSON, SHAPEFILE)

# A national 10 m product is a few GB; a vector upload of samples or boundaries far less.
MAX_RASTER_BYTES = 20 * 2**30
MAX_VECTOR_BYTES = 2 * 2**30
# Unpacked Shapefile parts together; .dbf/.shp compress well but not by more than ~20x.
MAX_UNCOMPRESSED_BYTES = 2 * 2**30
# Real .shp/.dbf files compress by 2-20x; 100x and more is a decompression bomb.
MAX_COMPRESSION_RATIO = 100
# The ratio is not meaningful for tiny members (a .cpg of 5 bytes "compresses" badly).
RATIO_MIN_BYTES = 64 * 2**10
MAX_ARCHIVE_MEMBERS = 16
# Parts of a Shapefile that QGIS writes (.qix/.sbn/.sbx spatial indexes, .qmd/.xml metadata).
SHAPEFILE_PARTS = frozenset(
    {".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qmd", ".xml"}
)
REQUIRED_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj")

# GDAL configuration while a user file is open. /vsicurl/ and the cloud file systems built on
# it open only the one allowed file name (a random one nobody can guess), so every URL is
# refused before a request is made; a VRT raw band (which reads any file by offset) is refused
# on GDAL >= 3.10 (Debian 12's GDAL 3.6 has no such switch: there the driver allow-list is what
# keeps VRTs out); no .aux.xml is written next to the file.
_NOWHERE = f"croplayer-network-is-off-{secrets.token_hex(16)}"
GUARD_OPTIONS: dict[str, str] = {
    "CPL_VSIL_CURL_ALLOWED_FILENAME": f"/vsicurl/{_NOWHERE}",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": f".{_NOWHERE}",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_VRT_ENABLE_RAWRASTERBAND": "NO",
    "GDAL_PAM_ENABLED": "NO",
    "OGR_GEOJSON_MAX_OBJ_SIZE": "500",  # MB
}


class UnsafeFile(ValueError):
    """The file is not opened; ``reason`` says why in words a user can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextmanager
def gdal_guard() -> Iterator[None]:
    """GDAL with network file systems and VRT raw bands off (rasterio and pyogrio share it)."""
    with rasterio.Env(**GUARD_OPTIONS):
        yield


# --- the file itself ---------------------------------------------------------------------------

_PREFIX = re.compile(r"^[A-Za-z0-9_]+:")  # GDAL's "GTIFF_DIR:1:file", "GPKG:file:table", ...


def local_file(path: str | os.PathLike[str], *, max_bytes: int) -> Path:
    """``path`` as an absolute path to a regular local file of at most ``max_bytes``."""
    text = os.fspath(path)
    if "\x00" in text:
        raise UnsafeFile("the file name contains a NUL character")
    if text.startswith(("/vsi", "\\vsi")) or "://" in text or _PREFIX.match(text):
        raise UnsafeFile(
            "only local files are read (no /vsi... path, URL or GDAL driver prefix)"
        )
    p = Path(text).absolute()
    try:
        st = p.stat()
    except OSError as e:
        raise UnsafeFile(f"no such file: {p.name}") from e
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{p.name} is not a regular file")
    if st.st_size == 0:
        raise UnsafeFile("the file is empty")
    if st.st_size > max_bytes:
        raise UnsafeFile(f"the file is larger than {max_bytes // 2**20} MB")
    return p


def head(path: Path, n: int = 64) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # TIFF and BigTIFF
SQLITE_MAGIC = b"SQLite format 3\x00"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_MAGIC = b"\x1f\x8b"
SHP_MAGIC = b"\x00\x00\x27\x0a"  # file code 9994, big-endian


def _json_start(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def vector_kind(path: Path) -> str:
    """'gpkg', 'geojson', 'geojson.gz', 'shp' or 'zip' from the first bytes, or UnsafeFile."""
    data = head(path, 512)
    if data.startswith(SQLITE_MAGIC):
        return "gpkg"
    if data[:4] in ZIP_MAGIC:
        return "zip"
    if data.startswith(SHP_MAGIC):
        return "shp"
    if data.startswith(GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as fh:
                inner = fh.read(512)
        except (OSError, EOFError) as e:
            raise UnsafeFile("the gzip file is damaged") from e
        if _json_start(inner):
            return "geojson.gz"
        raise UnsafeFile("a gzip file must hold GeoJSON")
    if _json_start(data):
        return "geojson"
    raise UnsafeFile(
        "the file is not a GeoPackage, GeoJSON, Shapefile or zipped Shapefile "
        "(its first bytes do not match any of them)"
    )


# --- zip archives (one Shapefile) ------------------------------------------------------------


def member_name(info: zipfile.ZipInfo) -> PurePosixPath:
    raw = info.filename
    name = PurePosixPath(raw.replace("\\", "/"))
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":") or name.is_absolute():
        raise UnsafeFile(f"archive member {raw!r} has an absolute path")
    if ".." in name.parts:
        raise UnsafeFile(f"archive member {raw!r} points outside the archive ('..')")
    return name


def archive_check(
    path: Path, *, max_uncompressed: int = MAX_UNCOMPRESSED_BYTES
) -> list[zipfile.ZipInfo]:
    """The members to extract, after every safety rule was checked on the archive's directory."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UnsafeFile("the zip archive is damaged or not a zip") from e
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise UnsafeFile(
            f"the archive has {len(infos)} members; at most {MAX_ARCHIVE_MEMBERS} "
            "(zip one Shapefile)"
        )
    files: list[zipfile.ZipInfo] = []
    total = 0
    for info in infos:
        name = member_name(info)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeFile(f"archive member {info.filename!r} is a symbolic link")
        if info.is_dir():
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: zips made on Windows or by Python
            raise UnsafeFile(f"archive member {info.filename!r} is not a regular file")
        if name.name.startswith("._") or "__MACOSX" in name.parts:
            continue  # macOS resource forks: never extracted, never read
        suffix = name.suffix.lower()
        if suffix not in SHAPEFILE_PARTS:
            raise UnsafeFile(
                f"archive member {info.filename!r}: only the parts of one Shapefile "
                f"({', '.join(sorted(SHAPEFILE_PARTS))}) may be in the archive"
            )
        if info.flag_bits & 0x1:
            raise UnsafeFile(f"archive member {info.filename!r} is encrypted")
        total += info.file_size
        if total > max_uncompressed:
            raise UnsafeFile(f"the archive unpacks to more than {max_uncompressed // 2**20} MB")
        if info.file_size > RATIO_MIN_BYTES and (
            info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)
        ):
            raise UnsafeFile(
                f"archive member {info.filename!r} is compressed "
                f"{info.file_size / max(info.compress_size, 1):.0f} times; at most "
                f"{MAX_COMPRESSION_RATIO} (this looks like a zip bomb)"
            )
        files.append(info)
    shps = [i for i in files if i.filename.lower().endswith(".shp")]
    if len(shps) != 1:
        raise UnsafeFile(
            f"the archive must hold exactly one Shapefile (.shp); it holds {len(shps)}"
        )
    stem = str(member_name(shps[0]).with_suffix("")).lower()
    present = {
        member_name(i).suffix.lower()
        for i in files
        if str(member_name(i).with_suffix("")).lower() == stem
    }
    missing = [s for s in REQUIRED_SHAPEFILE_PARTS if s not in present]
    if missing:
        why = " (the coordinate system: it is required)" if ".prj" in missing else ""
        raise UnsafeFile(f"the Shapefile has no {', '.join(missing)} file{why}")
    return [i for i in files if str(member_name(i).with_suffix("")).lower() == stem]


def archive_extract(
    path: Path, dest: Path, *, max_uncompressed: int = MAX_UNCOMPRESSED_BYTES
) -> Path:
    """Extract the checked Shapefile parts flat into ``dest``; the .shp path.

    The sizes in the zip directory can lie, so the byte budgets are enforced again on the bytes
    actually written.
    """
    members = archive_check(path, max_uncompressed=max_uncompressed)
    written = 0
    shp: Path | None = None
    try:
        with zipfile.ZipFile(path) as zf:
            for info in members:
                suffix = member_name(info).suffix.lower()
                target = dest / f"upload{suffix}"
                budget = min(
                    max_uncompressed - written,
                    max(MAX_COMPRESSION_RATIO * max(info.compress_size, 1), RATIO_MIN_BYTES),
                )
                n = 0
                with zf.open(info) as src, target.open("xb") as out:
                    while chunk := src.read(2**16):
                        n += len(chunk)
                        if n > budget:
                            raise UnsafeFile(
                                f"archive member {info.filename!r} unpacks to more than its "
                                "declared size or the limits (this looks like a zip bomb)"
                            )
                        out.write(chunk)
                written += n
                if suffix == ".shp":
                    shp = target
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        if isinstance(e, UnsafeFile):
            raise
        raise UnsafeFile("the zip archive is damaged") from e
    assert shp is not None  # archive_check found exactly one
    return shp


# --- which driver GDAL would use ---------------------------------------------------------------

_GDAL_OF_RASTER = 0x02
_GDAL_OF_VECTOR = 0x04


def _identify_load() -> Callable[[str, int], str | None] | None:
    """GDAL's ``GDALIdentifyDriverEx`` from the libgdal rasterio and pyogrio are linked to
    (neither exposes it): which driver would open a file, asked before any driver opens it.
    None if the library cannot be found; the driver is then checked right after opening."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("gdal") or "libgdal.so")
        identify = lib.GDALIdentifyDriverEx
        short_name = lib.GDALGetDriverShortName
    except (OSError, AttributeError):
        return None
    identify.restype = ctypes.c_void_p
    identify.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    short_name.restype = ctypes.c_char_p
    short_name.argtypes = [ctypes.c_void_p]

    def detect(path: str, flags: int) -> str | None:
        handle = identify(os.fsencode(path), flags, None, None)
        return str(short_name(handle).decode()) if handle else None

    return detect


_identify = _identify_load()


def driver_check(detected: str | None, allowed: Collection[str], *, what: str) -> str:
    if detected is None:
        raise UnsafeFile(f"the file cannot be read as {what} (damaged, or another format)")
    if detected not in allowed:
        raise UnsafeFile(
            f"the file was recognised as {detected!r}, not "
            f"{' or '.join(repr(a) for a in allowed)}: only {what} files are read"
        )
    return detected


def identify(path: str, *, raster: bool, allowed: Collection[str], what: str) -> None:
    """Refuse a file for which GDAL would pick a driver outside ``allowed`` (before opening)."""
    if _identify is None:
        return
    with gdal_guard():
        detected = _identify(path, _GDAL_OF_RASTER if raster else _GDAL_OF_VECTOR)
    driver_check(detected, allowed, what=what)


# --- error text --------------------------------------------------------------------------------

_SEE_PREVIOUS = "See previous exception"
_TMP_PATH = re.compile(r"(/vsi[a-z_]+/)?(/[^\s:'\"()]+)+")


def gdal_reason(e: BaseException, *, paths: Collection[str | os.PathLike[str]] = ()) -> str:
    """The useful part of a GDAL/pyogrio/rasterio error, without server paths.

    pyogrio raises "Read failed. See previous exception" with the real reason as the cause;
    GDAL names the file it was given, which is a temporary path the user never saw.
    """
    chain: list[str] = []
    cur: BaseException | None = e
    while cur is not None and len(chain) < 5:
        text = str(cur).strip()
        if text and _SEE_PREVIOUS not in text:
            chain.append(text)
        cur = cur.__cause__ or cur.__context__
    text = chain[0] if chain else type(e).__name__
    for p in sorted((os.fspath(p) for p in paths), key=len, reverse=True):
        if p:
            text = text.replace(p, "the file")
    text = _TMP_PATH.sub(lambda m: "the file" if _looks_like_path(m.group(0)) else m.group(0), text)
    return text.strip()[:500]


def _looks_like_path(s: str) -> bool:
    return s.startswith("/vsi") or s.count("/") >= 2


# --- rasters -------------------------------------------------------------------------------------


def raster_open(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_RASTER_BYTES
) -> DatasetReader:
    """Open a user's GeoTIFF (or COG) read-only, or UnsafeFile.

    The dataset is opened under :func:`gdal_guard`; reading its pixels afterwards needs no
    network or other file (a GeoTIFF references none).
    """
    p = local_file(path, max_bytes=max_bytes)
    if head(p, 4) not in TIFF_MAGIC:
        raise UnsafeFile(
            "not a raster GDAL can read as GeoTIFF: only GeoTIFF and Cloud Optimized GeoTIFF "
            "files are accepted (the file's first bytes are not a TIFF's)"
        )
    identify(str(p), raster=True, allowed=RASTER_DRIVERS, what="GeoTIFF")
    try:
        with gdal_guard(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(p, "r", driver=GTIFF)
    except RasterioIOError as e:
        raise UnsafeFile(f"not a raster GDAL can read: {gdal_reason(e, paths=[p])}") from e
    if ds.driver not in RASTER_DRIVERS:
        ds.close()
        driver_check(ds.driver, RASTER_DRIVERS, what="GeoTIFF")
    return ds


# --- vectors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorSource:
    """A checked vector file: what to hand pyogrio, and the driver that must read it."""

    path: str
    driver: str
    hidden: tuple[str, ...]  # server paths never to show in messages

    def reason(self, e: BaseException) -> str:
        return gdal_reason(e, paths=self.hidden)

    def _checked(self, info: dict[str, Any]) -> None:
        driver_check(info.get("driver"), (self.driver,), what=self.driver)

    def layers(self) -> list[tuple[str, str | None]]:
        """(name, geometry type) of every layer."""
        try:
            with gdal_guard():
                found = pyogrio.list_layers(self.path)
        except Exception as e:  # pyogrio's DataSourceError and friends
            raise UnsafeFile(f"the file cannot be read as {self.driver}: {self.reason(e)}") from e
        return [(str(name), None if geom is None else str(geom)) for name, geom in found]

    def info(self, *, layer: str | None = None) -> dict[str, Any]:
        try:
            with gdal_guard():
                info: dict[str, Any] = pyogrio.read_info(self.path, layer=layer)
        except Exception as e:
            raise UnsafeFile(f"the file cannot be read as {self.driver}: {self.reason(e)}") from e
        self._checked(info)
        return info

    def read_dataframe(self, *, layer: str | None = None, **kwargs: Any) -> Any:
        """pyogrio.read_dataframe after the driver that opens it was checked; UnsafeFile."""
        self.info(layer=layer)
        try:
            with gdal_guard():
                return pyogrio.read_dataframe(self.path, layer=layer, **kwargs)
        except Exception as e:  # pyogrio's errors, shapely's GEOSException...
            raise UnsafeFile(f"the file cannot be read as {self.driver}: {self.reason(e)}") from e


_KIND_DRIVER = {
    "gpkg": GPKG,
    "geojson": GEOJSON,
    "geojson.gz": GEOJSON,
    "shp": SHAPEFILE,
    "zip": SHAPEFILE,
}


@contextmanager
def vector_open(
    path: str | os.PathLike[str],
    *,
    allowed: Collection[str] = VECTOR_DRIVERS,
    max_bytes: int = MAX_VECTOR_BYTES,
    max_uncompressed: int = MAX_UNCOMPRESSED_BYTES,
) -> Iterator[VectorSource]:
    """Check a user's vector file and yield what may be read from it, or UnsafeFile.

    A zip (one Shapefile) is extracted into a temporary folder that is removed at exit.
    """
    p = local_file(path, max_bytes=max_bytes)
    kind = vector_kind(p)
    driver = _KIND_DRIVER[kind]
    if driver not in allowed:
        raise UnsafeFile(f"a {driver} file is not accepted here (only {', '.join(allowed)})")
    if kind == "zip":
        with tempfile.TemporaryDirectory(prefix="croplayer-open-") as tmp:
            shp = archive_extract(p, Path(tmp), max_uncompressed=max_uncompressed)
            identify(str(shp), raster=False, allowed=(driver,), what=driver)
            yield VectorSource(path=str(shp), driver=driver, hidden=(str(shp), tmp, str(p)))
        return
    gdal_path = f"/vsigzip/{p}" if kind == "geojson.gz" else str(p)
    identify(gdal_path, raster=False, allowed=(driver,), what=driver)
    yield VectorSource(path=gdal_path, driver=driver, hidden=(gdal_path, str(p), str(p.parent)))
