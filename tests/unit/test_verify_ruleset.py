"""A ruleset's diff: every planned rule present, the planned policies, and the planned order
(iptables evaluates a chain top to bottom). Pure: the tables are iptables-save's text, parsed."""

from __future__ import annotations

from netlab.kernel.verify import _diff_ruleset, _parse_save
from netlab.plan import Rule, Ruleset

RS = Ruleset("n", (Rule("nat", "POSTROUTING", "-s 10.244.0.0/16 -d 10.244.0.0/16 -j RETURN"),
                   Rule("nat", "POSTROUTING", "-s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE")),
             policies=(("filter", "FORWARD", "DROP"),))


def save(*nat_rules: str, forward: str = "DROP") -> dict[str, list[str]]:
    return _parse_save("\n".join(["*nat", ":POSTROUTING ACCEPT [0:0]", *nat_rules, "COMMIT",
                                  "*filter", f":FORWARD {forward} [0:0]", "COMMIT"]))


def test_planned_order_passes_and_a_swap_is_named():
    first = "-A POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -j RETURN"
    second = "-A POSTROUTING -s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE"
    assert _diff_ruleset(RS, save(first, second)) == ""
    assert _diff_ruleset(RS, save(second, first)) == "rules of nat POSTROUTING out of the planned order"


def test_missing_rule_and_policy():
    first = "-A POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -j RETURN"
    got = _diff_ruleset(RS, save(first, forward="ACCEPT"))
    assert got.startswith("missing: -A POSTROUTING -s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE")
    assert "policy filter FORWARD is ACCEPT (want DROP)" in got
