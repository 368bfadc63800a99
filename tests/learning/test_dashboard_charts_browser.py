"""The dashboard's history charts in a real browser: a province's values joined by a line across
the rounds, and the threshold drawn as a visible line across the whole chart."""

from __future__ import annotations

import pytest

from tests.conftest import page_login
from tests.learning.test_dashboard import camp  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser


def test_history_lines_and_threshold_are_drawn(camp, users, asgi_server, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page, asgi_server, "lead")
    page.goto(f"{asgi_server}/campaigns/{camp.slug}/dashboard/")
    page.select_option("#history-province", "420000")  # Hubei: rounds 1 and 2
    page.locator("#chart-iou").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    found = page.evaluate(
        """() => {
          const chart = Chart.getChart('chart-iou');
          const ctx = chart.ctx, area = chart.chartArea, ratio = chart.currentDevicePixelRatio;
          const px = (x, y) => Array.from(ctx.getImageData(Math.round(x * ratio),
                                                          Math.round(y * ratio), 1, 1).data);
          const pts = chart.getDatasetMeta(0).data.map(p => [p.x, p.y]);
          // The segment between the two rounds' points, at its middle: the line's green.
          const mid = px((pts[0][0] + pts[1][0]) / 2, (pts[0][1] + pts[1][1]) / 2);
          // The threshold's red, sampled across the chart (dashes: most samples, not all).
          const y = chart.scales.y.getPixelForValue(0.85);
          let red = 0, n = 0;
          for (let x = area.left + 2; x < area.right - 80; x += 3) {
            n += 1;
            const [r, g, b] = px(x, y);
            if (r > 150 && g < 90 && b < 90) red += 1;
          }
          return {points: pts.length, values: chart.data.datasets[0].data, mid, red, n};
        }"""
    )
    assert found["points"] == 2 and found["values"] == [0.7, 0.88]
    r, g, b, _a = found["mid"]
    assert g > r and g > b, found["mid"]  # the line (#2e7d32) joins the two rounds
    assert found["red"] > 0.5 * found["n"], found  # the threshold runs across the chart
    assert errors == []
