# SPDX-License-Identifier: MIT
"""`aii navigate` and `aii navigate-bench` (docs/navigation.md, 6-7). The work is in run.py;
these functions read arguments, call it and print."""

import argparse
import json
import os
import sys

from ..clikit import EXIT_CRITICAL, nonnegative_int, positive_float, positive_int
from .errors import NavError

NAV_EXAMPLES = """\
examples:
  aii navigate --seed 3                              seed 3, monitor on a simulated board, real time
  aii navigate --seed 3 --faults link,stale --plot nav.png    faults injected; the plot shows why it stopped
  aii navigate --seed 3 --board none --monitor off   simulated time, no monitor: the baseline
  aii navigate --seed 7 --size 16x10 --json          one JSON object (collisions, goal_reached, stops, ...)
  aii navigate --micropython build/unix/micropython  the monitor on MicroPython's unix port

faults: none, all, random, or a comma list of overrun, hog, dropout, stale, link, watchdog,
hallucination, estop (docs/navigation.md, 6). A real-time run leaves `watchdog` to the tests
(tests/host/test_nav_node.py resets a simulated board through its watchdog).

exit status: 0 the run ended without a collision, 2 it collided, 1 refused or failed (one line
says why), 64 usage error."""

BENCH_EXAMPLES = """\
examples:
  aii navigate-bench --worlds 50                     50 worlds with random faults, monitor on and off
  aii navigate-bench --worlds 20 --timing nominal    quick: fixed job durations, no measuring first
  aii navigate-bench --worlds 1000 --wall-cap-s 1800 --json   the make-bench figure

exit status: 0 no collision with the monitor and no monitor miss, 2 otherwise, 1 refused, 64
usage error."""


def _size(text):
    from .world import parse_size

    try:
        parse_size(text)
    except NavError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None
    return text


def _faults(text):
    from .faults import parse

    try:
        return parse(text)
    except NavError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None


def args_navigate(p):
    p.add_argument("--seed", type=nonnegative_int, default=1, help="world seed")
    p.add_argument(
        "--size",
        type=_size,
        default="small",
        help="small (10x7 m), medium, large, or WxH in metres (default small)",
    )
    p.add_argument("--faults", type=_faults, default=(), help="faults to inject (default none)")
    p.add_argument(
        "--board",
        choices=("vboard", "none"),
        default="vboard",
        help="vboard: the monitor on a simulated board in real time (default); "
        "none: simulated time, the monitor's code in this process",
    )
    p.add_argument(
        "--micropython", metavar="EXE", help="run the simulated board on MicroPython's unix port"
    )
    p.add_argument(
        "--monitor",
        choices=("on", "off"),
        default="on",
        help="off: the planner drives unchecked (the baseline; --board none only)",
    )
    p.add_argument(
        "--camera",
        choices=("real", "model", "none"),
        default=None,
        help="real: rendered frames through the LiteRT face detector with grounding "
        "(default on a board); model: its measured rates (default with --board none)",
    )
    p.add_argument(
        "--limit-s",
        type=positive_float,
        default=None,
        help="simulated seconds before giving up (default: from the distance)",
    )
    p.add_argument("--plot", metavar="PNG", help="write the world, path and stops here")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def args_navigate_bench(b):
    b.add_argument("--worlds", type=positive_int, default=100)
    b.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="first world's seed (the others follow)",
    )
    b.add_argument("--size", type=_size, default="small")
    b.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="processes (default: the CPU count, at most 4)",
    )
    b.add_argument(
        "--wall-cap-s",
        type=positive_float,
        default=1800.0,
        help="stop after this much wall time (default 1800)",
    )
    b.add_argument(
        "--timing",
        choices=("measured", "nominal"),
        default="measured",
        help="measured (default): the edge jobs' durations and the face detector's rates "
        "measured here first (about a minute); nominal: plausible fixed ones (quick)",
    )
    b.add_argument("--json", action="store_true", help="print one JSON object")


def _progress(enabled, what):
    if not enabled or not sys.stderr.isatty() and not os.environ.get("AII_PROGRESS"):
        return None
    state = {"last": -1}

    def show(done, total):
        pct = int(100 * done / max(total, 1))
        if pct // 5 != state["last"] // 5:
            state["last"] = pct
            print(f"\r{what}: {pct:3d} %", end="", file=sys.stderr, flush=True)
            if done >= total:
                print(file=sys.stderr)

    return show


def do_navigate(args):
    from .plot import plot
    from .run import scenario

    board = None if args.board == "none" else args.board
    if args.micropython and board is None:
        raise NavError("--micropython runs a simulated board: leave out --board none")
    if args.micropython and not os.path.exists(args.micropython):
        raise NavError(
            f"{args.micropython}: no such MicroPython binary (make test-device builds one)"
        )
    if args.monitor == "off" and board is not None:
        raise NavError("--monitor off runs in simulated time only: add --board none")
    camera = args.camera or ("real" if board else "model")
    where = "on a simulated board, real time" if board else "simulated time"
    if not args.json:
        print(
            f"navigate: seed {args.seed}, {args.size}, faults {','.join(args.faults) or 'none'}, "
            f"monitor {args.monitor} ({where}), camera {camera}",
            flush=True,
        )
    prog = _progress(not args.json, "simulated time")
    w, res = scenario(
        args.seed,
        args.size,
        args.faults,
        monitor=args.monitor == "on",
        camera=camera,
        board=board,
        micropython=args.micropython,
        limit_s=args.limit_s,
        progress=prog,
    )
    s = res.summary()
    if args.plot:
        plot(w, res, args.plot)
        s["plot"] = args.plot
    if args.json:
        print(json.dumps(s))
    else:
        stops = ", ".join(f"{k} {v}" for k, v in sorted(s["stops"].items())) or "none"
        goal = f"in {s['time_to_goal_s']} s" if s["goal_reached"] else "NOT reached"
        print(f"goal {goal}; collisions {s['collisions']}; stops: {stops}")
        print(
            f"monitor misses {s['monitor_misses']}; planner miss rate {s['planner_miss_rate']:.2%} "
            f"({s['planner_jobs']} jobs); closest approach while moving "
            f"{s['min_clearance_mm']} mm; response bound d {s['d_us']} us "
            f"(monitor wcrt {s['monitor_wcrt_us']} us)"
        )
        if s.get("board"):
            b = s["board"]
            print(
                f"board: {b['frames_sent']} frames sent, {b['frames_refused']} refused, "
                f"{b['link_errors']} link errors, {b['monitor_checks_since_last_boot']} checks since the board's last boot"
            )
        if args.plot:
            print(f"plot: {args.plot}")
    return EXIT_CRITICAL if s["collisions"] else 0


def do_navigate_bench(args):
    from .run import bench, measure

    timing = det = None
    if args.timing == "measured":
        if not args.json:
            print("measuring the edge jobs and the face detector here ...", flush=True)
        timing, det = measure()
    prog = _progress(not args.json, "worlds")
    out = bench(
        args.worlds,
        args.seed,
        args.size,
        args.jobs,
        args.wall_cap_s,
        prog,
        timing=timing,
        detection=det,
    )
    if args.json:
        print(json.dumps(out))
    else:
        print(table(out))
    on = out["monitor_on"]
    return EXIT_CRITICAL if on["collisions"] or on["monitor_misses"] else 0


def table(out):
    on, off = out["monitor_on"], out["monitor_off"]
    rows = [
        ("collisions", on["collisions"], off["collisions"]),
        ("worlds with a collision", on["worlds_with_collision"], off["worlds_with_collision"]),
        ("goals reached", on["goals_reached"], off["goals_reached"]),
        ("mean time to goal (s)", on["time_to_goal_s_mean"], off["time_to_goal_s_mean"]),
        ("monitor misses", on["monitor_misses"], "-"),
        (
            "planner miss rate, no faults",
            _pct(on["planner_miss_rate_no_faults"]),
            _pct(off["planner_miss_rate_no_faults"]),
        ),
        (
            "closest approach moving (mm)",
            on["min_clearance_mm_moving"],
            off["min_clearance_mm_moving"],
        ),
    ]
    for k in sorted(set(on["stops"]) | set(off["stops"])):
        rows.append((f"stops: {k}", on["stops"].get(k, 0), "-"))
    head = (
        f"{out['worlds_run']} of {out['worlds_asked']} worlds ({out['size']}), "
        f"{out['wall_s']} s wall (cap {out['wall_cap_s']} s{', CUT' if out['cut_by_wall_cap'] else ''}), "
        f"faults: {on['faults_injected']}"
    )
    lines = [head, f"| {'':30} | monitor on | monitor off |", f"|{'-' * 32}|{'-' * 12}|{'-' * 13}|"]
    for name, a, b in rows:
        lines.append(f"| {name:30} | {a!s:>10} | {b!s:>11} |")
    return "\n".join(lines)


def _pct(v):
    return "-" if v is None else f"{v:.2%}"
