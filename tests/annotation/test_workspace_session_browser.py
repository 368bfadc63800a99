"""A session that ends while edits wait (logged out elsewhere, expired while offline) loses
nothing: the queue is kept, the page says to log in again, and it is sent once after that."""

from __future__ import annotations

from annotation.models import AuditEntry, SamplePolygon
from tests.annotation.test_workspace_browser import (  # noqa: F401, F811  # fixtures
    _draw_polygon,
    _new_page,
    _open,
    _status,
    _wait_saved,
    imaged_block,
)
from tests.conftest import page_login


def test_ended_session_keeps_the_queue_until_logged_in_again(
    users,
    asgi_server,
    browser,
    imaged_block,  # noqa: F811  # the imported fixture
):
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = _new_page(context, errors)
    page_login(page, asgi_server, "annotator")
    _open(page, asgi_server, imaged_block)
    _draw_polygon(page, [(0.2, 0.2), (0.5, 0.2), (0.5, 0.5), (0.2, 0.5)])
    _wait_saved(page, 1)

    context.clear_cookies()  # the session is gone (and the CSRF cookie with it)
    _draw_polygon(page, [(0.6, 0.6), (0.9, 0.6), (0.9, 0.9), (0.6, 0.9)])
    page.wait_for_selector("#ws[data-session-ended='1']", timeout=15_000)
    assert "log in again" in _status(page) and "1 change" in _status(page)
    assert SamplePolygon.objects.count() == 1
    queued = page.evaluate(
        """() => new Promise(ok => { const r = indexedDB.open("croplayer-workspace");
             r.onsuccess = () => { const q = r.result.transaction("outbox").objectStore("outbox")
               .count(); q.onsuccess = () => ok(q.result); }; })"""
    )
    assert queued == 1

    other = _new_page(context, errors)  # logging in again, in another tab: a new CSRF token
    page_login(other, asgi_server, "annotator")
    page.evaluate("wsFlush()")
    _wait_saved(page, 2)
    assert SamplePolygon.objects.count() == 2
    assert set(SamplePolygon.objects.values_list("created_by__username", flat=True)) == {
        "annotator"
    }
    assert AuditEntry.objects.filter(action="polygon_create").count() == 2
    assert page.get_attribute("#ws", "data-session-ended") is None
    assert errors == []
    context.close()


def test_someone_elses_session_keeps_the_queue_for_its_author(
    users,
    asgi_server,
    browser,
    imaged_block,  # noqa: F811  # the imported fixture
):
    """The lead logs in in another tab of the annotator's browser: the annotator's page does not
    send its changes as the lead's; they wait until the annotator is logged in again."""
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = _new_page(context, errors)
    page_login(page, asgi_server, "annotator")
    _open(page, asgi_server, imaged_block)

    context.clear_cookies()
    other = _new_page(context, errors)
    page_login(other, asgi_server, "lead")  # a lead may write every block: the server would take it
    _draw_polygon(page, [(0.2, 0.2), (0.5, 0.2), (0.5, 0.5), (0.2, 0.5)])
    page.wait_for_selector("#ws[data-session-ended='1']", timeout=15_000)
    assert "log in as annotator" in _status(page)
    assert not SamplePolygon.objects.exists()

    context.clear_cookies()
    page_login(other, asgi_server, "annotator")
    page.evaluate("wsFlush()")
    _wait_saved(page, 1)
    assert SamplePolygon.objects.get().created_by == users["annotator"]
    assert errors == []
    context.close()
