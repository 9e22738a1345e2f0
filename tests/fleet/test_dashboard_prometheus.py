# SPDX-License-Identifier: MIT
"""The dashboard's Prometheus side: a real Prometheus server (Debian's `prometheus`, its own
config and data folder, a free loopback port; never the package's service) scrapes /metrics of a
running `aii dashboard` and a value is read back through its HTTP API; the shipped alerting
rules pass `promtool check rules` and their unit tests (`promtool test rules`); every query of
the shipped Grafana dashboard and rules names metrics the dashboard exports (metrics.METRICS)."""

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from aii_host.dashboard.metrics import METRICS
from dashboard_util import Dashboard, write_fleet

OPS = Path(__import__("aii_host.dashboard", fromlist=["x"]).__file__).parent / "ops"
HERE = Path(__file__).resolve().parent
EXPORTED = {n + "_total" if kind == "counter" else n for n, (kind, _l, _h) in METRICS.items()}


def _tool(name):
    exe = shutil.which(name)
    assert exe, f"{name} is missing: make setup installs Debian's prometheus (tools/setup.sh)"
    return exe


def _names(expr):
    return set(re.findall(r"\baii_[A-Za-z0-9_]+", expr))


def _rule_exprs():
    # The rules file keeps each expr on one line (promtool reads it as YAML; this test only
    # needs the expressions).
    text = (OPS / "aii-alerts.yml").read_text()
    return re.findall(r"^\s+expr: (.+)$", text, re.MULTILINE)


def test_alert_rules_pass_promtool_and_name_exported_metrics(tmp_path):
    r = subprocess.run(
        [_tool("promtool"), "check", "rules", str(OPS / "aii-alerts.yml")],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 9 rules found" in r.stdout, r.stdout
    exprs = _rule_exprs()
    assert len(exprs) == 9
    for e in exprs:
        assert _names(e), f"rule names no aii_ metric: {e}"
        assert _names(e) <= EXPORTED, (e, _names(e) - EXPORTED)
    # The rules' meaning, on made-up series (tests/fleet/dashboard_rules_test.yml).
    shutil.copy(OPS / "aii-alerts.yml", tmp_path / "aii-alerts.yml")
    shutil.copy(HERE / "dashboard_rules_test.yml", tmp_path / "rules_test.yml")
    r = subprocess.run(
        [_tool("promtool"), "test", "rules", "rules_test.yml"],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_grafana_queries_name_exported_metrics():
    dash = json.loads((OPS / "grafana-dashboard.json").read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            exprs.extend(t["expr"] for t in p.get("targets", []))

    walk(dash["panels"])
    assert len(exprs) >= 10
    used = set()
    for e in exprs:
        assert _names(e), f"a Grafana query names no aii_ metric: {e}"
        assert _names(e) <= EXPORTED, (e, _names(e) - EXPORTED)
        used |= _names(e)
    # The panels cover what the issue lists: online, latency, misses, lag, epoch time,
    # quantities and delta, violations, transfers, audit length.
    for name in (
        "aii_node_online",
        "aii_node_latency_seconds",
        "aii_task_deadline_misses_total",
        "aii_node_journal_lag_records",
        "aii_epoch_verification_seconds",
        "aii_quantity_held",
        "aii_quantity_delta",
        "aii_violations_total",
        "aii_transfers",
        "aii_audit_records",
    ):
        assert name in used, name


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(base, q):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        out = json.loads(r.read())
    assert out["status"] == "success", out
    return out["data"]["result"]


def _metric_value(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{want}}} not in /metrics:\n{text}")


def test_real_prometheus_scrapes_and_reads_back(tmp_path):
    # Two nodes nobody serves: the dashboard aggregates them itself and exports them offline.
    fleet = write_fleet(
        tmp_path / "fleet.toml", [("n1", "tcp:127.0.0.1:1"), ("n2", "/dev/ttyNOPE")]
    )
    dash = Dashboard(tmp_path, "--fleet", str(fleet), "--seconds", "120")
    prom = None
    try:
        target = urllib.parse.urlsplit(dash.url).netloc
        shutil.copy(OPS / "aii-alerts.yml", tmp_path / "aii-alerts.yml")
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files:\n  - aii-alerts.yml\n"
            f"scrape_configs:\n  - job_name: aii\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        for _ in range(5):  # a free port may be taken between our look and its bind
            port = _free_port()
            log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
            prom = subprocess.Popen(
                [
                    _tool("prometheus"),
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            base = f"http://127.0.0.1:{port}"
            if _wait_ready(base, prom):
                break
            prom.kill()
            prom.wait()
            prom = None
        assert prom is not None, (tmp_path / "prometheus.log").read_text()[-3000:]
        end = time.monotonic() + 60
        result = []
        while time.monotonic() < end and not result:
            result = _query(base, 'aii_node_online{node="n2"}')
            time.sleep(0.5)
        log_tail = (tmp_path / "prometheus.log").read_text()[-2000:]
        assert result, f"Prometheus read nothing back: {log_tail}"
        assert result[0]["metric"]["job"] == "aii"
        st, _, text = dash.get("/metrics")
        assert st == 200
        text = text.decode()
        assert (
            float(result[0]["value"][1]) == _metric_value(text, "aii_node_online", node="n2") == 0
        )
        nodes = _query(base, "aii_fleet_nodes")
        assert float(nodes[0]["value"][1]) == _metric_value(text, "aii_fleet_nodes") == 2
        up = _query(base, 'up{job="aii"}')
        assert float(up[0]["value"][1]) == 1
        with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=5) as r:
            groups = json.loads(r.read())["data"]["groups"]
        assert sum(len(g["rules"]) for g in groups) == 9
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        _rc, _out, err = dash.stop()
    assert "Traceback" not in err, err


def _wait_ready(base, proc, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False
