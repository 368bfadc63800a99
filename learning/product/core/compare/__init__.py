"""Pure comparison of the final cropland map with an existing product (the paper's section 3.4).

No Django: arrays, rasters on disk and dataclasses in; dataclasses, CSV and PNG out. The Django
side (``learning.product.services.compare``) turns blocks, statistics and DEM windows into these
inputs.

Modules: :mod:`classes` (which product values mean cropland), :mod:`metrics` (IoU, area
fraction, edge density, relative deviation on one block's arrays), :mod:`grids` (reading a
product or a final-map raster onto a block's pixel grid), :mod:`finalmap` (the final-map
interface), :mod:`report` (block, slope and province aggregation), :mod:`plots` (PNG figures).
"""
