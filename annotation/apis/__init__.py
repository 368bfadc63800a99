"""The annotation app's REST endpoints (mounted under /api/ by ``annotation.urls`` and
``annotation.transfer_urls``), one module per concept: ``geojson`` (shared GeoJSON fields),
``samples`` (a block's polygons with If-Match writes), ``audit``, ``labels``, ``assignments``
(the work flow), ``agreement``, ``overview`` (with ``overview_tiles`` and ``overview_counts``),
``predictions`` and ``transfer`` (sample files: import and export).
"""
