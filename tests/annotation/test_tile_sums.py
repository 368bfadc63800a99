"""A lead's low-zoom sums (``annotation.tile_sums``): kept in the database for other processes,
followed by prediction id after a new prediction instead of summed again, rows committed out
of id order caught by the re-read window, and what the ids cannot tell by the periodic full
sum. Each check compares the tile with the live count of the same cells (``_cells_query``)."""

from __future__ import annotations

import time

import pytest

from annotation import tile_sums
from annotation import tiles as tiles_module
from annotation.models import OverviewCellSums
from annotation.tiles import TileScope, _cells_query, _python_tile, _tile_blocks
from learning.models import BlockPrediction, ModelVersion
from mapping.geo.mvt import cell_blocks
from mapping.models import ImagerySource
from tests.annotation.test_overview_tiles import _xyz, tile
from tests.factories import current_prediction_make
from tests.mvt_decode import decode

pytestmark = pytest.mark.django_db

Z = 3


@pytest.fixture(autouse=True)
def _fresh():
    tiles_module._BASES.clear()
    tile_sums.cell_sums_forget()
    yield
    tiles_module._BASES.clear()
    tile_sums.cell_sums_forget()


def _live(camp):
    _, x, y = _xyz(Z)
    k = cell_blocks(Z, 0.05)
    rows, cols = _tile_blocks(camp, Z, x, y, k)
    scope = TileScope(campaign=camp, only_user=None)
    return decode(_python_tile(_cells_query(scope, rows, cols, k), Z, x, y, k, 0.05))


def _fraction_sum(decoded):
    return sum(f["properties"].get("fraction") or 0 for f in decoded["cells"]["features"])


def _held(seg):
    (held,) = [v for (_, s), v in tile_sums._HELD.items() if s == seg.pk]
    return held


def _predict(seg, block, source, fraction, pk=None):
    extra = {"pk": pk} if pk is not None else {}
    return BlockPrediction.objects.create(
        block=block, source=source, model_version=seg, mask_path="m.tif",
        cropland_fraction=fraction, **extra,
    )  # fmt: skip


@pytest.fixture
def seg2(field):
    """A new segmenter that has predicted the first 4 blocks on mapbox (fraction 0.5)."""
    camp, blocks = field
    mapbox = ImagerySource.objects.get(slug="mapbox")
    seg = current_prediction_make(blocks=blocks[:4], sources=[mapbox], name="seg-r2",
                                  round_number=2)  # fmt: skip
    BlockPrediction.objects.filter(model_version=seg).update(cropland_fraction=0.5)
    return seg


def test_a_new_prediction_is_added_without_summing_again(users, field, seg2, login):
    camp, blocks = field
    c = login("lead")
    assert decode(tile(c, *_xyz(Z)).content) == _live(camp)
    first = _held(seg2)
    generation, revision = first.generation, first.revision
    _predict(seg2, blocks[5], ImagerySource.objects.get(slug="mapbox"), 1.0)
    after = decode(tile(c, *_xyz(Z)).content)
    assert after == _live(camp)
    assert _fraction_sum(after) > _fraction_sum(_live(camp)) - 1e-9 > 0
    held = _held(seg2)
    assert held.generation == generation  # followed, not summed again
    assert held.revision == revision + 1


def test_a_row_committed_below_an_id_already_read_is_caught_by_the_re_read_window(
    users, field, seg2, login
):
    """Two workers: the one holding the lower id commits after the higher id was read."""
    camp, blocks = field
    mapbox = ImagerySource.objects.get(slug="mapbox")
    c = login("lead")
    tile(c, *_xyz(Z))
    top = BlockPrediction.objects.order_by("-pk").values_list("pk", flat=True).first()
    _predict(seg2, blocks[6], mapbox, 1.0, pk=top + 10)
    assert decode(tile(c, *_xyz(Z)).content) == _live(camp)
    assert set(range(top + 1, top + 10)) <= set(_held(seg2).gaps)
    _predict(seg2, blocks[7], mapbox, 0.25, pk=top + 4)  # the late commit
    after = decode(tile(c, *_xyz(Z)).content)
    assert after == _live(camp)
    held = _held(seg2)
    assert top + 4 in held.counted and top + 4 not in held.gaps


def test_a_gap_past_its_grace_settles_and_the_periodic_full_sum_catches_what_it_missed(
    users, field, seg2, login
):
    camp, blocks = field
    mapbox = ImagerySource.objects.get(slug="mapbox")
    c = login("lead")
    tile(c, *_xyz(Z))
    top = BlockPrediction.objects.order_by("-pk").values_list("pk", flat=True).first()
    _predict(seg2, blocks[6], mapbox, 1.0, pk=top + 3)
    tile(c, *_xyz(Z))
    held = _held(seg2)
    for i in held.gaps:  # missing for longer than the grace: taken for rolled back
        held.gaps[i] = time.time() - tile_sums.GRACE_S - 1
    tile(c, *_xyz(Z))
    assert not held.gaps and held.settled >= top + 3
    # A transaction open longer than the grace commits: the ids above the settled one do not
    # show it, so the tile misses it ...
    _predict(seg2, blocks[7], mapbox, 1.0, pk=top + 1)
    missed = decode(tile(c, *_xyz(Z)).content)
    assert missed != _live(camp)
    # ... until the periodic full sum.
    held.full_at -= tile_sums.FULL_EVERY_S + 1
    assert decode(tile(c, *_xyz(Z)).content) == _live(camp)
    assert _held(seg2).generation != held.generation


def test_a_process_that_starts_takes_the_sums_kept_in_the_database(users, field, seg2, login):
    camp, blocks = field
    c = login("lead")
    expected = decode(tile(c, *_xyz(Z)).content)
    saved = _held(seg2)
    assert OverviewCellSums.objects.filter(campaign=camp, segmenter_id=seg2.pk).exists()
    tiles_module._BASES.clear()
    tile_sums.cell_sums_forget()  # a new process
    assert decode(tile(c, *_xyz(Z)).content) == expected
    loaded = _held(seg2)
    assert loaded.full_at == saved.full_at and loaded.generation != saved.generation
    # and follows from there
    _predict(seg2, blocks[8], ImagerySource.objects.get(slug="mapbox"), 1.0)
    assert decode(tile(c, *_xyz(Z)).content) == _live(camp)
    assert _held(seg2).full_at == saved.full_at


def test_sums_prepared_at_a_rounds_end_spare_the_first_tile_a_full_sum(
    users, field, seg2, monkeypatch, login
):
    """``overview_sums_prepare`` (a round's end, in the worker) counts and keeps the sums for
    the new segmenter; the first low-zoom tile of a web process then loads them and never sums
    every prediction itself."""
    camp, _ = field
    assert not OverviewCellSums.objects.filter(campaign=camp, segmenter_id=seg2.pk).exists()
    assert tile_sums.overview_sums_prepare(campaign=camp) is True
    assert OverviewCellSums.objects.filter(campaign=camp, segmenter_id=seg2.pk).exists()
    tiles_module._BASES.clear()
    tile_sums.cell_sums_forget()  # the web process: nothing held

    def no_full_sum(*args, **kwargs):
        raise AssertionError("a request summed every prediction")

    monkeypatch.setattr(tile_sums, "_full", no_full_sum)
    assert decode(tile(login("lead"), *_xyz(Z)).content) == _live(camp)


def test_nothing_to_prepare_without_a_segmenter(users, field):
    camp, _ = field
    ModelVersion.objects.filter(campaign=camp).update(is_current=False)
    assert tile_sums.overview_sums_prepare(campaign=camp) is False
    assert not OverviewCellSums.objects.filter(campaign=camp).exists()
