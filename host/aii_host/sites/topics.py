# SPDX-License-Identifier: MIT
"""The topic tree (docs/fleet.md §10.2). Everything lives under ROOT; a gateway publishes only
under its site, a verifier only under its own id (its requests included: gateways subscribe to
every verifier's request topic for their site)."""

import re

ROOT = "aii/v1"
# Site, node and verifier names become topic levels: no wildcards, separators or control bytes.
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_name(what, name):
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"{what} {name!r}: 1-64 letters, digits, '_', '.' or '-'")
    return name


def site_state(site):
    return f"{ROOT}/site/{site}/state"


def site_epoch(site):
    return f"{ROOT}/site/{site}/epoch"


def node_state(site, node):
    return f"{ROOT}/site/{site}/node/{node}/state"


def node_records(site, node):
    return f"{ROOT}/site/{site}/node/{node}/rec"


def requests_for(site):
    """What a gateway subscribes to: every verifier's requests to `site`."""
    return f"{ROOT}/verifier/+/req/{site}"


def request(vid, site):
    return f"{ROOT}/verifier/{vid}/req/{site}"


def responses(vid):
    return f"{ROOT}/verifier/{vid}/resp"


def verdict(vid):
    return f"{ROOT}/verifier/{vid}/verdict"


# A cross-site coordinator (sites/xfer.py) writes only under its own id, as a verifier does:
# its requests to a site's gateway, and its decisions (QoS 1 stream, signed).


def coord_requests_for(site):
    """What a gateway subscribes to: every coordinator's requests to `site`."""
    return f"{ROOT}/coord/+/req/{site}"


def coord_request(cid, site):
    return f"{ROOT}/coord/{cid}/req/{site}"


def coord_responses(cid):
    return f"{ROOT}/coord/{cid}/resp"


def coord_decisions(cid):
    return f"{ROOT}/coord/{cid}/tx"


# What a verifier subscribes to (QoS 1), besides its own responses.
VERIFIER_SUBS = (
    f"{ROOT}/site/+/state",
    f"{ROOT}/site/+/epoch",
    f"{ROOT}/site/+/node/+/state",
    f"{ROOT}/site/+/node/+/rec",
    f"{ROOT}/verifier/+/verdict",
    f"{ROOT}/coord/+/tx",
)


def parse(topic):
    """(kind, fields) of a topic of the tree: ("site_state", {site}), ("epoch", {site}),
    ("node_state", {site, node}), ("rec", {site, node}), ("req", {vid, site}), ("resp", {vid}),
    ("verdict", {vid}), ("coord_req", {cid, site}), ("coord_resp", {cid}), ("coord_tx", {cid});
    ValueError for anything else."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if parts[:2] != ROOT.split("/"):
        raise ValueError(f"topic {topic!r} is not under {ROOT}/")
    p = parts[2:]
    for x in p:
        if not x:
            raise ValueError(f"topic {topic!r}: empty level")
    if len(p) == 3 and p[0] == "site" and p[2] in ("state", "epoch"):
        kind, f = ("site_state" if p[2] == "state" else "epoch"), {"site": p[1]}
    elif len(p) == 5 and p[0] == "site" and p[2] == "node" and p[4] in ("state", "rec"):
        kind, f = ("node_state" if p[4] == "state" else "rec"), {"site": p[1], "node": p[3]}
    elif len(p) == 4 and p[0] == "verifier" and p[2] == "req":
        kind, f = "req", {"vid": p[1], "site": p[3]}
    elif len(p) == 3 and p[0] == "verifier" and p[2] in ("resp", "verdict"):
        kind, f = p[2], {"vid": p[1]}
    elif len(p) == 4 and p[0] == "coord" and p[2] == "req":
        kind, f = "coord_req", {"cid": p[1], "site": p[3]}
    elif len(p) == 3 and p[0] == "coord" and p[2] in ("resp", "tx"):
        kind, f = "coord_" + p[2], {"cid": p[1]}
    else:
        raise ValueError(f"topic {topic!r} is not one of the tree's (docs/fleet.md §10.2)")
    for k, v in f.items():
        if not NAME.match(v):
            raise ValueError(f"topic {topic!r}: bad {k} {v!r}")
    return kind, f
