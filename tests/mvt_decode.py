"""A minimal Mapbox vector tile reader for tests: the protobuf wire format read field by field
(written from the MVT 2.1 specification, independent of ``mapping.geo.mvt``'s writer)."""

from __future__ import annotations

import struct
from typing import Any


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited, raw 8/4
    bytes for fixed-size fields."""
    out = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            v, i = buf[i : i + n], i + n
        elif wire == 1:
            v, i = buf[i : i + 8], i + 8
        elif wire == 5:
            v, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.append((number, v))
    return out


def _packed(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        v, i = _varint(buf, i)
        out.append(v)
    return out


def _unzigzag(v: int) -> int:
    return (v >> 1) ^ -(v & 1)


def _value(buf: bytes) -> Any:
    ((number, v),) = _fields(buf)
    if number == 1:
        return v.decode()
    if number == 2:
        return struct.unpack("<f", v)[0]
    if number == 3:
        return struct.unpack("<d", v)[0]
    if number in (4, 5):
        return v if number == 5 or v < 1 << 63 else v - (1 << 64)
    if number == 6:
        return _unzigzag(v)
    return bool(v)


def _rings(commands: list[int]) -> list[list[tuple[int, int]]]:
    rings: list[list[tuple[int, int]]] = []
    x = y = 0
    i = 0
    while i < len(commands):
        cmd, count = commands[i] & 7, commands[i] >> 3
        i += 1
        if cmd == 7:
            rings[-1].append(rings[-1][0])
            continue
        for _ in range(count):
            x += _unzigzag(commands[i])
            y += _unzigzag(commands[i + 1])
            i += 2
            if cmd == 1:
                rings.append([(x, y)])
            else:
                rings[-1].append((x, y))
    return rings


def decode(tile: bytes) -> dict[str, dict[str, Any]]:
    """{layer name: {"extent", "version", "features": [{"id", "type", "properties", "rings"}]}}."""
    layers = {}
    for number, layer_buf in _fields(tile):
        assert number == 3, f"a tile holds only layers (field 3), got field {number}"
        name, extent, version, keys, values, raw = "", 4096, 1, [], [], []
        for n, v in _fields(layer_buf):
            if n == 1:
                name = v.decode()
            elif n == 2:
                raw.append(v)
            elif n == 3:
                keys.append(v.decode())
            elif n == 4:
                values.append(_value(v))
            elif n == 5:
                extent = v
            elif n == 15:
                version = v
        features = []
        for f in raw:
            feat: dict[str, Any] = {"id": None, "type": None, "properties": {}, "rings": []}
            for n, v in _fields(f):
                if n == 1:
                    feat["id"] = v
                elif n == 2:
                    tags = _packed(v)
                    feat["properties"] = {
                        keys[tags[j]]: values[tags[j + 1]] for j in range(0, len(tags), 2)
                    }
                elif n == 3:
                    feat["type"] = v
                elif n == 4:
                    feat["rings"] = _rings(_packed(v))
            features.append(feat)
        layers[name] = {"extent": extent, "version": version, "features": features}
    return layers
