# SPDX-License-Identifier: MIT
"""`aii dashboard --demo` in a real browser: headless Chromium (Debian's, tools/setup.sh) driven
by Playwright. The page loads and shows the three nodes; the violation and the isolated node
show within 10 s of the injection; a clear without the operator's token is refused (the page
says so, the node stays isolated); with the token it is done, the page clears, and the audit
trail names the operator. The page's screenshot (docs/img/dashboard.png is one of them) goes to
build/dashboard/."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from aii_host.dashboard import tokens
from aii_host.dashboard.metrics import METRICS
from aii_host.fleet.audit import Audit
from dashboard_util import Dashboard
from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "build" / "dashboard"
INJECT_AFTER_S = 3


def _chromium():
    exe = shutil.which("chromium")
    assert exe, "Debian's chromium is missing: make setup installs it (tools/setup.sh)"
    return exe


@pytest.fixture
def demo(tmp_path):
    ops = tmp_path / "operators"
    tokens.keygen("alice", ops)
    d = Dashboard(
        tmp_path,
        "--demo",
        "--inject-after",
        str(INJECT_AFTER_S),
        "--operators",
        str(ops),
        "--seconds",
        "300",
    )
    d.token = (ops / "alice.operator").read_text().strip()
    yield d
    _rc, _out, err = d.stop()
    assert "Traceback" not in err and "internal error" not in err, err


def test_page_shows_violation_and_operator_clears_it(demo):
    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = p.chromium.launch(executable_path=_chromium(), args=args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # The refused clear's 401 is logged by the browser as a failed load: expected.
            page.on(
                "console",
                lambda m: (
                    m.type == "error" and "(Unauthorized)" not in m.text and errors.append(m.text)
                ),
            )
            page.goto(demo.url)
            cards = page.locator(".card[data-node]")
            expect(cards).to_have_count(3, timeout=30_000)
            assert sorted(cards.evaluate_all("els => els.map(e => e.dataset.node)")) == [
                "east",
                "north",
                "south",
            ]
            for n in ("north", "south", "east"):
                expect(page.locator(f'.card[data-node="{n}"]')).to_have_attribute(
                    "data-state", "online", timeout=60_000
                )

            # The injection: its event carries the time it was done; the page must show the
            # violation and the isolated node within 10 s of it.
            inj = demo.wait_event("injected", timeout=90)
            left_ms = max(0.0, 10.0 - (time.time() - inj["t"])) * 1000
            east = page.locator('.card[data-node="east"]')
            expect(east).to_have_attribute("data-isolated", "1", timeout=left_ms)
            expect(page.locator("#verdict")).to_have_attribute("data-status", "VIOLATION")
            expect(page.locator('[data-quantity="Wh"] .delta-bad').first).to_have_text("+7.000 Wh")
            expect(page.locator("#alerts li.critical").first).to_contain_text("east")
            shown_after = time.time() - inj["t"]
            assert shown_after <= 10.0, shown_after
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)

            # Without the token: refused, on the page and over plain HTTP; east stays isolated.
            east.locator(".clear-btn").click()
            expect(page.locator("#action-result")).to_have_class("refused")
            expect(page.locator("#action-result")).to_contain_text("401")
            body = json.dumps({"node": "east"}).encode()
            ctype = {"Content-Type": "application/json"}
            st, hdrs, _ = demo.request("POST", "/api/clear", body, ctype)
            assert st == 401 and hdrs.get("WWW-Authenticate", "").startswith("Bearer"), st
            bad = dict(ctype, Authorization="Bearer " + "0" * 64)
            assert demo.request("POST", "/api/clear", body, bad)[0] == 403
            time.sleep(1.0)  # a poll or two: still isolated
            expect(east).to_have_attribute("data-isolated", "1")

            # With the token: cleared, the page clears, the audit trail names the operator.
            page.fill("#token", demo.token)
            page.locator("#token").dispatch_event("change")
            t_clear = time.time()
            east.locator(".clear-btn").click()
            expect(page.locator("#action-result")).to_have_class("done", timeout=10_000)
            expect(east).to_have_attribute("data-isolated", "0", timeout=10_000)
            expect(page.locator("#verdict")).not_to_have_attribute(
                "data-status", "VIOLATION", timeout=10_000
            )
            expect(page.locator(".clear-btn")).to_have_count(0)
            cleared_after = time.time() - t_clear
            assert not errors, errors
        finally:
            browser.close()
    # The figures docs/dashboard.md quotes: injection -> page, click -> page cleared.
    (SHOTS / "browser.json").write_text(
        json.dumps({"violation_shown_after_s": shown_after, "cleared_after_s": cleared_after})
    )
    clears = Audit(demo.db).records(kind="clear")
    assert [r[3]["node"] for r in clears] == ["east"]
    assert clears[0][3]["by"].startswith("operator alice (aii dashboard"), clears[0][3]
    kinds = [e["kind"] for e in demo.events()]
    for k in ("violation", "isolated", "cleared", "operator"):
        assert k in kinds, kinds
    refused = [e for e in demo.events("operator") if e["data"].get("refused")]
    assert len(refused) >= 2  # the page's and the two HTTP ones (no token, unknown token)

    # Every metric of the table is exported by the live demo (the Grafana check relies on it).
    st, _, text = demo.get("/metrics")
    assert st == 200
    names = {
        line.split("{")[0].split(" ")[0]
        for line in text.decode().splitlines()
        if line and line[0] != "#"
    }
    for name, (kind, _labels, _help) in METRICS.items():
        if name == "aii_alerts_failed":
            continue  # only once a sink failed (tests/fleet/test_dashboard_alerts.py)
        exported = name + "_total" if kind == "counter" else name
        assert exported in names, (exported, sorted(names))
