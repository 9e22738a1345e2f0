# SPDX-License-Identifier: MIT
"""The fleet's origin policy (docs/fleet.md §8): every journal record carries its origin, and the
aggregator raises an alert for a change whose origin the fleet file does not allow for its node
and quantity (issue 15: moves inside one node leave the fleet's totals unchanged, so the
balance check alone cannot see them)."""

import re

import pytest
from aii_host.fleet import config as fconfig
from aii_host.fleet.aggregate import Aggregator
from aii_host.transport import open_transport


def test_a_console_transfer_is_an_alert_a_task_the_policy_allows_is_not(make_fleet):
    # Console transfers turned on for the test (a signed config_set or the deployed config
    # is the only way): the policy (conftest.ALLOW) still allows only signed changes of Wh.
    env = make_fleet(2, console_writes=1)
    alerts = []
    with Aggregator(env.path, on_event=lambda *a: alerts.append(a)) as agg:
        agg.wait_synced(20)
        c = agg.client("n1")
        seq = c.transfer("grid", "load", "Wh", 5)["seq"]  # signed: allowed
        agg.wait_seq("n1", seq)
        with open_transport(env.boards["n1"].proc.port) as t:  # the serial line
            t.write(b"transfer grid load Wh 0.25\n")
            out = b""
            while b"ok: journal seq" not in out:
                got = t.read(0.5)
                assert got, out
                out += got
        agg.wait(lambda s: any(a[1] == "isolated" and a[0] == "n1" for a in alerts), 15, "alert")
        viol = [a[2] for a in alerts if a[1] == "violation"]
        assert len(viol) == 1, viol
        v = viol[0]
        assert (v["node"], v["kind"], v["quantity"], v["delta"]) == ("n1", "origin", "Wh", 250)
        assert v["origin"] == "console" and v["op"] == "transfer" and v["seq"] > seq
        assert v["allowed"] == "config, none, signed"
        # The pump task moved litres all along (allowed for l): nothing about it, nor about n2.
        assert not any(a[2].get("quantity") == "l" for a in alerts if a[1] == "violation")
        assert "n2" not in agg.verify_now().isolated
        reason = agg.verify_now().isolated["n1"]
        assert reason.startswith("transfer of Wh by console at seq")


def test_policy_rules_most_specific_first():
    p = fconfig.Policy(
        ("signed",),
        [("*", "l", ["task"]), ("n1", "*", ["console"]), ("n1", "l", ["signed", "task"])],
    )
    o = fconfig.ORIGINS
    assert p.allows("n2", "Wh", o["signed"]) and not p.allows("n2", "Wh", o["task"])
    assert p.allows("n2", "l", o["task"]) and not p.allows("n2", "l", o["signed"])
    assert p.allows("n1", "Wh", o["console"]) and not p.allows("n1", "Wh", o["signed"])
    assert p.allowed("n1", "l") == {o["signed"], o["task"]}
    assert p.always("n1") == set()  # console (node-wide) and signed+task (l) share nothing
    assert p.always("n2") == set()
    assert fconfig.Policy().always("n9") == {o["signed"], o["config"], o["none"]}


@pytest.mark.parametrize(
    "policy, msg",
    [
        ('[policy]\ndefault = ["root"]\n', "unknown origin 'root'"),
        ("[policy]\ndefault = 1\n", "must be a list of origin names"),
        ('[[policy.allow]]\nnode = "n9"\norigins = ["task"]\n', "node 'n9' is not in the fleet"),
        ('[[policy.allow]]\nnode = "n1"\n', re.escape("needs origins = [...]")),
        ('[[policy.allow]]\norigins = ["task"]\nwho = 1\n', "unknown field 'who'"),
        ("[policy]\nallow2 = 1\n", "unknown field 'allow2'"),
    ],
)
def test_a_bad_policy_is_a_clear_error(policy, msg):
    text = '[[node]]\nname = "n1"\nport = "tcp:127.0.0.1:1"\n' + policy
    with pytest.raises(fconfig.FleetConfigError, match=msg):
        fconfig.loads(text)
