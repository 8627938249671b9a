"""The browser harness itself (tests/conftest.py: `browser`, `page`) on a tiny self-contained page.

These prove the fixtures work; they skip with the reason when playwright or Chromium is missing.
"""

import pytest

HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>smoke</title></head>
<body>
  <p id="status">before</p>
  <button id="go" onclick="document.getElementById('status').textContent = 'after'">Go</button>
  <button id="log" onclick="console.error('smoke: something broke')">Log</button>
  <button id="alert" onclick="alert('smoke: hello')">Alert</button>
  <button id="throw" onclick="throw new TypeError('smoke: uncaught')">Throw</button>
</body></html>
"""


@pytest.fixture
def smoke(page, tmp_path):
    """The page with the smoke HTML loaded from a file:// URL."""
    html = tmp_path / "smoke.html"
    html.write_text(HTML, encoding="utf-8")
    page.goto(html.as_uri())
    return page


def test_loads_cleanly(smoke):
    assert smoke.title() == "smoke"
    assert (smoke.console_errors, smoke.page_errors, smoke.dialogs) == ([], [], [])


def test_click_changes_text(smoke):
    assert smoke.text_content("#status") == "before"
    smoke.click("#go")
    assert smoke.text_content("#status") == "after"


def test_screenshot_is_written(smoke, tmp_path):
    out = tmp_path / "shot.png"
    smoke.screenshot(path=str(out), full_page=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 1000


def test_console_error_is_recorded(smoke):
    smoke.click("#log")
    smoke.wait_for_function("1")  # a round trip, so the console event has arrived
    assert smoke.console_errors == ["smoke: something broke"]
    assert smoke.page_errors == []


def test_uncaught_exception_is_recorded(smoke):
    smoke.click("#throw")
    smoke.wait_for_function("1")
    assert smoke.page_errors == ["TypeError: smoke: uncaught"]


def test_alert_is_recorded_and_dismissed(smoke):
    smoke.click("#alert")  # returns only once the dialog is dismissed
    assert smoke.dialogs == [("alert", "smoke: hello")]
    smoke.click("#go")  # the page is not blocked by the dialog
    assert smoke.text_content("#status") == "after"
