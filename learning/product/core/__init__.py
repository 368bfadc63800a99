"""Pure core of the final product: decision -> block mask, province COG, polygons, exports.

No Django here (import-linter contract in pyproject.toml): arrays, shapely geometries and
dataclasses in, files out. ``learning.product.services.exports`` is the adapter from ORM rows.
"""
