"""From samples to answers: per-target summaries, ratios, claims and verdicts; then the rich table,
the JSON document and the bar chart.

:func:`analyse` is pure (no kernel, no processes), so the statistics and verdicts are unit-tested
on synthetic samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .claims import CLAIMS, Context, Verdict, verdict
from .runner import SCHEMA, Outcome, host_info
from .stats import Ratio, Summary, drift, human_rate, ratio, summarize

BASE = "underlay"
RAW = "veth"
EXPLAIN_OK = 0.95


@dataclass
class Row:
    """One (target, test, offload) figure with everything the table shows."""

    target: str
    kind: str
    lab: str | None
    datapath: str | None
    test: str
    offload: str
    unit: str
    summary: Summary | None
    values: list[float | None]
    errors: list[str]
    mtu: int | None = None
    mss: int | None = None
    ratio: Ratio | None = None
    ratio_veth: Ratio | None = None
    claim: str | None = None
    verdict: Verdict | None = None
    drift: float | None = None

    def as_dict(self) -> dict:
        c = CLAIMS.get(self.claim) if self.claim else None
        return {"target": self.target, "kind": self.kind, "lab": self.lab, "datapath": self.datapath,
                "test": self.test, "offload": self.offload, "unit": self.unit,
                "summary": self.summary.as_dict() if self.summary else None, "values": self.values,
                "errors": self.errors, "mtu": self.mtu, "mss": self.mss,
                "ratio": self.ratio.as_dict() if self.ratio else None,
                "ratio_veth": self.ratio_veth.as_dict() if self.ratio_veth else None,
                "claim": {"key": c.key, "text": c.text} if c else None,
                "verdict": self.verdict.as_dict() if self.verdict else None, "drift": self.drift}


@dataclass
class ExplainRow:
    lab: str
    test: str
    offload: str
    netlab: Summary | None
    explain: Summary | None
    ratio: Ratio | None
    note: str = ""

    @property
    def ok(self) -> bool | None:
        return None if self.ratio is None else self.ratio.value >= EXPLAIN_OK

    def as_dict(self) -> dict:
        return {"lab": self.lab, "test": self.test, "offload": self.offload,
                "netlab": self.netlab.as_dict() if self.netlab else None,
                "explain": self.explain.as_dict() if self.explain else None,
                "ratio": self.ratio.as_dict() if self.ratio else None, "ok": self.ok, "note": self.note}


@dataclass
class Analysis:
    rows: list[Row] = field(default_factory=list)
    explain: list[ExplainRow] = field(default_factory=list)

    def row(self, target: str, test: str, offload: str) -> Row | None:
        return next((r for r in self.rows if (r.target, r.test, r.offload) == (target, test, offload)), None)


def _family(datapath: str | None) -> str:
    return (datapath or "").split("-")[0]


def _reference(rows: list[Row], me: Row, key: str) -> Row | None:
    """The lab a relational claim compares against: same test and offload, claim ``key``,
    preferring the same family (calico-ipip against calico-vxlan, flannel-udp against flannel's
    VXLAN)."""
    cands = [r for r in rows if r.kind == "lab" and r.claim == key and r.test == me.test
             and r.offload == me.offload and r.ratio is not None and r.target != me.target]
    cands.sort(key=lambda r: (_family(r.datapath) != _family(me.datapath), r.target))
    return cands[0] if cands else None


def _first_mss(samples: list[dict]) -> dict[str, int]:
    """The TCP MSS iperf3 reported per target (its first run that has one): what the overlay's
    header overhead leaves of the MTU, beside the underlay's, for the MSS-loss part of a verdict."""
    mss_of: dict[str, int] = {}
    for s in samples:
        if s.get("mss") and s["target"] not in mss_of:
            mss_of[s["target"]] = s["mss"]
    return mss_of


def _summary_rows(targets: list[dict], samples: list[dict], tests: list[str], offloads: list[str],
                  mss_of: dict[str, int]) -> list[Row]:
    """One row per (offload, test, target) that has samples: its runs in round order, their
    min/median/max summary, the failures, and the drift from the first to the last round."""
    rows = []
    for off in offloads:
        for test in tests:
            for t in targets:
                mine = sorted((s for s in samples if (s["target"], s["test"], s["offload"]) == (t["id"], test, off)),
                              key=lambda s: s["round"])
                if not mine:
                    continue
                values = [s["value"] for s in mine]
                rows.append(Row(t["id"], t["kind"], t.get("lab"), t.get("datapath"), test, off, mine[0]["unit"],
                                summarize(values), values, [s["error"] for s in mine if s.get("error")],
                                mtu=t.get("mtu"), mss=mss_of.get(t["id"]), claim=t.get("claim"),
                                drift=drift(values)))
    return rows


def _add_ratios(an: Analysis) -> None:
    """Each row against the bare underlay and against one veth pair, same test and offload: the
    cost of the datapath over the wire, and over the namespaces' own veth hop."""
    for r in an.rows:
        base, raw = an.row(BASE, r.test, r.offload), an.row(RAW, r.test, r.offload)
        r.ratio = ratio(r.summary, base.summary if base else None)
        r.ratio_veth = ratio(r.summary, raw.summary if raw else None)


def _add_verdicts(an: Analysis, mss_of: dict[str, int]) -> None:
    """Each lab row's seed claim judged on its ratio; a relational claim against the reference
    lab measured in the same run, TCP rows with both MSS values for the header-overhead reasoning."""
    for r in an.rows:
        if r.kind != "lab":
            continue
        claim = CLAIMS.get(r.claim) if r.claim else None
        ref = _reference(an.rows, r, claim.ref) if claim and claim.ref else None
        ctx = Context(r.test, r.offload, r.mtu, r.mss if r.unit == "bit/s" else None,
                      mss_of.get(BASE) if r.unit == "bit/s" else None, ref.target if ref else None)
        r.verdict = verdict(claim, r.ratio, ctx, ref.ratio.value if ref and ref.ratio else None)


def _explain_rows(an: Analysis) -> list[ExplainRow]:
    """netlab's build of a lab against the same lab built by its own explain script
    (``<lab>@explain``): below EXPLAIN_OK is flagged, softly if the spreads still overlap."""
    out = []
    for r in an.rows:
        if r.kind != "lab":
            continue
        twin = an.row(f"{r.target}@explain", r.test, r.offload)
        if twin is None:
            continue
        q = ratio(r.summary, twin.summary)
        note = ""
        if q is not None and q.value < EXPLAIN_OK:
            note = "within the spread" if q.high >= EXPLAIN_OK else "slower than the explain build"
        out.append(ExplainRow(r.target, r.test, r.offload, r.summary, twin.summary, q, note))
    return out


def analyse(targets: list[dict], samples: list[dict], tests: list[str], offloads: list[str]) -> Analysis:
    """Summaries, ratios to the underlay and to the raw veth, claims and verdicts.

    ``targets`` are :meth:`Target.as_dict` documents and ``samples`` :meth:`Sample.as_dict`
    documents (only ``target``, ``test``, ``offload``, ``round``, ``value``, ``unit``, ``error``
    and ``mss`` are read), so a saved JSON file can be analysed again.
    """
    mss_of = _first_mss(samples)
    an = Analysis(_summary_rows(targets, samples, tests, offloads, mss_of))
    _add_ratios(an)
    _add_verdicts(an, mss_of)
    an.explain = _explain_rows(an)
    return an


# -- JSON --------------------------------------------------------------------------------------------

def document(out: Outcome, an: Analysis) -> dict:
    """The ``--json`` document: settings, targets, skipped labs, every raw iperf3 result, results."""
    return {
        "schema": SCHEMA,
        "started": out.started,
        "finished": time.time(),
        "seconds": round(out.seconds, 1),
        "host": host_info(),
        "settings": out.settings.as_dict(),
        "tests": [{"id": t.id, "label": t.label, "args": list(t.args), "unit": t.unit} for t in out.tests],
        "targets": [t.as_dict() for t in out.targets],
        "skipped": [s.as_dict() for s in out.skipped],
        "offload_state": out.offload_state,
        "runs": [s.as_dict() for s in out.samples],
        "results": [r.as_dict() for r in an.rows],
        "against_explain": [e.as_dict() for e in an.explain],
        "pids": out.pids,
    }


def outcome_from_document(doc: dict) -> Outcome:
    """Rebuild an :class:`Outcome` from a ``--json`` document, so a saved run can be analysed and
    drawn again (``netlab bench --from-json``) without measuring anything."""
    from .iperf import Endpoint, RunResult, Test
    from .runner import Sample, Settings, Slot
    from .targets import Skipped, Target

    if doc.get("schema") != SCHEMA:
        from ..errors import NetlabError

        from ..model import shown

        raise NetlabError(f"not a netlab bench document (schema {shown(doc.get('schema'))}, expected {SCHEMA!r})",
                          "give the file 'netlab bench --json' wrote")
    st = doc["settings"]
    settings = Settings(labs=st["labs"], duration=st["duration_s"], repeat=st["repeat"], parallel=st["parallel"],
                        udp_size=st["udp_size"], offload="both" if len(st["offload"]) == 2 else st["offload"][0],
                        against_explain=st["against_explain"], prefix=st["prefix"])
    tests = [Test(t["id"], t["label"], tuple(t["args"]), t["unit"]) for t in doc["tests"]]
    targets = [Target(t["id"], t["kind"], t["instance"], Endpoint(**t["src"]), Endpoint(**t["dst"]),
                      t["sender_namespaces"], lab=t["lab"], datapath=t["datapath"], claim=t["claim"],
                      brought_up=t["brought_up"], mtu=t["mtu"], notes=t["notes"]) for t in doc["targets"]]
    samples = [Sample(Slot(r["offload"], r["round"], r["test"], r["target"]),
                      RunResult(r["value"], r["unit"], r["client"], r["server"], r["error"], r["mss"],
                                r["client_pid"], r["server_pid"], r["started"], r["seconds"])) for r in doc["runs"]]
    return Outcome(settings, tests, targets, [Skipped(**x) for x in doc["skipped"]], samples,
                   offload_state=doc.get("offload_state", {}), started=doc["started"], seconds=doc["seconds"],
                   pids=doc.get("pids", []))


# -- the table ---------------------------------------------------------------------------------------

def _fmt(s: Summary | None, unit: str) -> tuple[str, str, str]:
    if s is None:
        return "—", "—", "—"
    return human_rate(s.min, unit), human_rate(s.median, unit), human_rate(s.max, unit)


def _ratio(r: Ratio | None) -> str:
    return "—" if r is None else f"{r.value:.2f}"


_VERDICT_STYLE = {"holds": "green", "does not hold": "yellow", "inconclusive": "magenta"}

_COLUMNS: tuple[tuple[str, dict[str, Any]], ...] = (  # Table.add_column's keyword arguments
    ("lab", {}), ("MTU", {"justify": "right"}), ("MSS", {"justify": "right"}), ("test", {}),
    ("min", {"justify": "right"}), ("median", {"justify": "right"}), ("max", {"justify": "right"}),
    ("spread", {"justify": "right"}), ("×underlay", {"justify": "right"}),
    ("×veth", {"justify": "right"}), ("seed claim", {}), ("verdict", {"overflow": "fold"}))


def _verdict_cell(r: Row):
    """The verdict column: the claim's verdict coloured by its status ("baseline" for the
    baselines); a row whose runs all failed shows the first error, partial failures are counted."""
    from rich.text import Text

    v = r.verdict
    if v is None:
        vtext = Text("baseline" if r.kind == "baseline" else "")
    else:
        vtext = Text(v.line, style=_VERDICT_STYLE.get(v.status, "dim"))
    if r.errors and r.summary is None:
        vtext = Text(f"failed: {r.errors[0]}", style="red")
    elif r.errors:
        vtext.append(f" ({len(r.errors)} of {len(r.values)} runs failed)", style="red")
    return vtext


def _offload_table(out: Outcome, an: Analysis, off: str, labels: dict[str, str]):
    """One offload mode's table: a section per target (in the order they were measured, MTU and
    MSS on its first line), a line per test with the rates, ratios, the seed's claim and verdict."""
    from rich.table import Table

    units = {"bit/s": "bit/s", "pkt/s": "pkt/s"}
    tb = Table(title=f"netlab bench — offload {off}: receiver-side rates, min/median/max over "
                     f"{out.settings.repeat} × {out.settings.duration} s; ratios to the underlay median",
               title_justify="left", show_lines=False, header_style="bold")
    for col, kw in _COLUMNS:
        tb.add_column(col, **kw)
    last = None
    order = {t.id: i for i, t in enumerate(out.targets)}
    tests = {t.id: i for i, t in enumerate(out.tests)}
    rows = sorted((x for x in an.rows if x.offload == off), key=lambda x: (order.get(x.target, 99), tests.get(x.test, 9)))
    for r in rows:
        first = r.target != last
        if first and last is not None:
            tb.add_section()
        last = r.target
        lo, med, hi = _fmt(r.summary, r.unit)
        known = CLAIMS.get(r.claim) if r.claim and r.test == "tcp" else None
        claim = known.text if known is not None else ""  # a claim key this version does not know: no text
        name = r.target if first else ""
        tb.add_row(name, str(r.mtu or "—") if first else "", str(r.mss or "—") if first else "",
                   labels.get(r.test, r.test), lo, f"{med} {units[r.unit]}" if r.summary else med, hi,
                   f"{r.summary.spread:.0%}" if r.summary else "—", _ratio(r.ratio), _ratio(r.ratio_veth),
                   claim if r.kind == "lab" else "", _verdict_cell(r))
    return tb


def _explain_result(e: ExplainRow):
    """ok, or below the threshold: yellow if the spreads overlap, red if clearly slower."""
    from rich.text import Text

    ok = e.ok
    return Text("—" if ok is None else ("ok" if ok else f"below {EXPLAIN_OK}: {e.note}"),
                style="green" if ok else ("yellow" if e.note == "within the spread" else "red"))


def _explain_table(an: Analysis, labels: dict[str, str]):
    """netlab's build against its own explain script's, per lab, offload and test."""
    from rich.table import Table

    te = Table(title="netlab build vs its own explain script (same lab, fresh namespaces): "
                     f"netlab / explain, expected ≥ {EXPLAIN_OK}", title_justify="left", header_style="bold")
    for col in ("lab", "offload", "test", "netlab median", "explain median", "ratio", "range", "result"):
        te.add_column(col)
    for e in an.explain:
        unit = next((r.unit for r in an.rows if r.target == e.lab and r.test == e.test), "bit/s")
        te.add_row(e.lab, e.offload, labels.get(e.test, e.test),
                   human_rate(e.netlab.median, unit) if e.netlab else "—",
                   human_rate(e.explain.median, unit) if e.explain else "—",
                   _ratio(e.ratio), f"{e.ratio.low:.2f}–{e.ratio.high:.2f}" if e.ratio else "—", _explain_result(e))
    return te


def tables(out: Outcome, an: Analysis):
    """rich renderables: one table per offload mode, the explain comparison, notes."""
    labels = {t.id: t.label for t in out.tests}
    result = [_offload_table(out, an, off, labels) for off in out.settings.offloads]
    if an.explain:
        result.append(_explain_table(an, labels))
    return result


def notes(out: Outcome, an: Analysis) -> list[str]:
    """Lines under the table: skipped labs and why, drift, explain verification, time taken."""
    lines = []
    for s in out.skipped:
        lines.append(f"skipped {s.lab}: {s.reason}")
    for off in out.settings.offloads:
        for test in (t.id for t in out.tests):
            r = an.row(BASE, test, off)
            if r and r.drift is not None and len(r.values) > 1:
                lines.append(f"drift (offload {off}, {test}): underlay baseline changed {r.drift:+.0%} "
                             f"from round 1 to round {len(r.values)}")
    for t in out.targets:
        for n in t.notes:
            if t.kind != "baseline":
                lines.append(f"{t.id}: {n}")
    lines.append(f"{len(out.samples)} iperf3 runs in {out.seconds:.0f} s; instances: "
                 + ", ".join(sorted({t.instance for t in out.targets})))
    return lines


# -- the plot ----------------------------------------------------------------------------------------

def plot(out: Outcome, an: Analysis, path: str) -> None:
    """Bar chart of the ratios to the underlay, one panel per offload mode, error bars from the
    min/max ratio, the seed's claim range drawn over each lab's TCP ×1 bar."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from ..errors import NetlabError

        raise NetlabError("--plot needs matplotlib, which is not installed",
                          "pip install 'netlab-cni[bench]' (./setup.sh installs it)") from None
    from .claims import CLAIMS as claims

    offs = out.settings.offloads
    tests = [t.id for t in out.tests]
    labels = {t.id: t.label for t in out.tests}
    fig, axes = plt.subplots(len(offs), 1, figsize=(max(8, 1.3 * len(out.targets) + 3), 4.2 * len(offs)),
                             squeeze=False)
    width = 0.8 / len(tests)
    for ax, off in zip(axes[:, 0], offs, strict=True):
        ids = [t.id for t in out.targets if an.row(t.id, tests[0], off)]
        for k, test in enumerate(tests):
            xs, ys, lo, hi = [], [], [], []
            for i, tid in enumerate(ids):
                r = an.row(tid, test, off)
                if r is None or r.ratio is None:
                    continue
                xs.append(i + (k - (len(tests) - 1) / 2) * width)
                ys.append(r.ratio.value)
                lo.append(max(0.0, r.ratio.value - r.ratio.low))
                hi.append(max(0.0, r.ratio.high - r.ratio.value))
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=labels[test])
        for i, tid in enumerate(ids):
            r = an.row(tid, "tcp", off)
            c = claims.get(r.claim) if r and r.claim else None
            if c and not c.ref:
                ax.hlines([c.lo, c.hi], i - 0.45, i + 0.45, colors="black", linestyles="dotted", linewidth=1)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(ids)))
        ax.set_xticklabels(ids, rotation=20, ha="right")
        ax.set_ylabel("ratio to underlay median")
        ax.set_title(f"offload {off} — error bars: min/max ratio; dotted: seed's claimed range")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
