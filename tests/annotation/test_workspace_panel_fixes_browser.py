"""Small workspace fixes, in a real browser: the lead's verdict line says what the others said
when the lead has not labelled; a provenance line without a source has no empty "· ·"; the
swipe divider sits under the slider's thumb wherever it is."""

from __future__ import annotations

import uuid

import pytest

from annotation.services.labels import integration_label_set, verdict_label_set
from mapping.models import ImagerySource
from tests.annotation.test_workspace_editing_browser import (  # noqa: F401 (fixtures)
    _prediction,
    edit_block,
)
from tests.conftest import page_login

pytestmark = pytest.mark.browser


def _open(browser, base, blk, who):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page, base, who)
    page.goto(f"{base}/annotate/blocks/{blk.pk}/")
    page.wait_for_selector("#ws[data-ready='1']")
    return page, errors


def test_leads_lines_and_the_swipe_divider(users, asgi_server, browser, edit_block):  # noqa: F811
    mv = _prediction(edit_block)
    mapbox = ImagerySource.objects.get(slug="mapbox")
    verdict_label_set(
        user=users["annotator"], block=edit_block, source=mapbox, verdict="tp", op_id=uuid.uuid4()
    )
    integration_label_set(
        user=users["lead"], block=edit_block, decision="merge_both", op_id=uuid.uuid4()
    )
    page, errors = _open(browser, asgi_server, edit_block, "lead")
    page.wait_for_function(
        "() => document.getElementById('pn-verdict-prov').textContent.includes('annotator')"
    )
    # Not "not labelled yet" beside a summary that shows the annotator's TP.
    line = page.inner_text("#pn-verdict-prov")
    assert line.startswith("not labelled by you yet") and "annotator: True positive" in line, line
    # The integration decision has no source: no doubled separator in its provenance.
    integ = page.inner_text("#pn-integration-prov")
    assert integ.startswith("lead · ") and "·  ·" not in integ and "· ·" not in integ, integ
    assert f"model {mv.name}" in integ

    page.keyboard.press("c")  # swipe-compare the two sources
    page.wait_for_selector("#ws-swipe:not([hidden])")
    for value in (5, 20, 50, 80, 95):
        gap = page.evaluate(
            """v => { const s = document.getElementById('ws-swipe');
              s.value = String(v); s.dispatchEvent(new Event('input'));
              const r = s.getBoundingClientRect();
              const thumb = r.left + 8 + (r.width - 16) * v / 100;
              const line = document.querySelector('.ws-swipe-line').getBoundingClientRect();
              return Math.abs(line.left - thumb); }""",
            value,
        )
        assert gap < 1.5, (value, gap)  # was about 50 px at 20 and 80
    assert errors == []
