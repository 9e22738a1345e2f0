# SPDX-License-Identifier: MIT
"""`aii navigate` and `aii navigate-bench` on a few short worlds: the JSON the issue names, the
plot, faults ending in stops with their causes, the baseline without the monitor, one run end
to end with the monitor on a simulated board, and bad arguments refused in one line."""

import json

import pytest
from aii_host.main import main

FIELDS = (
    "collisions",
    "goal_reached",
    "stops",
    "monitor_misses",
    "planner_miss_rate",
    "min_clearance_mm",
)


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_navigate_json_and_plot(capsys, tmp_path):
    png = tmp_path / "nav.png"
    rc, out, _ = run(
        capsys,
        "navigate",
        "--seed",
        "1",
        "--board",
        "none",
        "--limit-s",
        "12",
        "--json",
        "--plot",
        str(png),
    )
    s = json.loads(out)
    for k in FIELDS:
        assert k in s, k
    assert rc == 0 and s["collisions"] == 0
    assert s["stops"]["boot"] == 1 and s["d_us"] > s["monitor_wcrt_us"] > 0
    assert png.stat().st_size > 10000


@pytest.mark.parametrize(
    "seed, faults, causes",
    [
        ("4", "link", ("link",)),
        ("6", "estop,stale", ("estop", "stale")),
        ("5", "watchdog,overrun", ("watchdog", "deadline")),
    ],
)
def test_faults_end_in_stops_with_their_causes(capsys, seed, faults, causes):
    # Simulated time is seeded: these worlds meet their faults while the robot moves.
    rc, out, _ = run(
        capsys,
        "navigate",
        "--seed",
        seed,
        "--board",
        "none",
        "--faults",
        faults,
        "--limit-s",
        "14",
        "--json",
    )
    s = json.loads(out)
    assert rc == 0 and s["collisions"] == 0
    for c in causes:
        assert s["stops"].get(c, 0) >= 1, (c, s["stops"])
    assert s["monitor_misses"] == 0


def test_the_baseline_has_no_monitor(capsys):
    _, out, _ = run(
        capsys,
        "navigate",
        "--seed",
        "4",
        "--board",
        "none",
        "--monitor",
        "off",
        "--faults",
        "link",
        "--limit-s",
        "8",
        "--json",
    )
    s = json.loads(out)
    assert s["monitor"] is False and s["stops"] == {}


def test_navigate_end_to_end_on_a_simulated_board(capsys):
    rc, out, err = run(
        capsys, "navigate", "--seed", "2", "--limit-s", "6", "--camera", "model", "--json"
    )
    s = json.loads(out)
    assert rc == 0 and s["collisions"] == 0, err
    assert "boot" in s["stops"] or "watchdog" in s["stops"]
    assert s["board"]["frames_sent"] > 50 and s["board"]["frames_refused"] == 0, s["board"]


def test_navigate_bench_reports_both_modes(capsys):
    rc, out, _ = run(
        capsys, "navigate-bench", "--worlds", "2", "--jobs", "2", "--timing", "nominal", "--json"
    )
    s = json.loads(out)
    assert rc == 0 and s["worlds_run"] == 2 and not s["cut_by_wall_cap"]
    for mode in ("monitor_on", "monitor_off"):
        for k in (
            "collisions",
            "goals_reached",
            "stops",
            "monitor_misses",
            "planner_miss_rate_no_faults",
            "min_clearance_mm_moving",
        ):
            assert k in s[mode], (mode, k)
    assert s["monitor_on"]["stops"]["boot"] == 2


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--size", "2x2"], "each side 4 .. 60 m"),
        (["--size", "big"], "small, medium, large"),
        (["--faults", "meteor"], "unknown fault"),
        (["--seed", "-1"], "must be an integer >= 0"),
        (["--monitor", "off"], "simulated time only"),
        (["--micropython", "/nonexistent/mp"], "no such MicroPython"),
    ],
)
def test_bad_arguments_one_line(capsys, argv, says):
    rc, _, err = run(capsys, "navigate", *argv)
    # A usage error shows the usage first; the last line says what is wrong.
    assert rc in (1, 64) and says in err.strip().splitlines()[-1] and "Traceback" not in err, err
