"""From samples to answers: per-target summaries, ratios, claims and verdicts; then the rich table,
the JSON document and the bar chart.

:func:`analyse` is pure (no kernel, no processes), so the statistics and verdicts are unit-tested
on synthetic samples.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .claims import CLAIMS, Claim, Context, Verdict, verdict
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
                "claim": c.as_dict() if c else None,
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
    """Each lab row's claim judged on its ratio; a relational claim against the reference lab
    measured in the same run, TCP rows with both MSS values for the header-overhead reasoning, and
    a figure from fewer than two rounds (of lab or underlay) marked tentative."""
    for r in an.rows:
        if r.kind != "lab":
            continue
        claim = CLAIMS.get(r.claim) if r.claim else None
        ref = _reference(an.rows, r, claim.ref) if claim and claim.ref else None
        base = an.row(BASE, r.test, r.offload)
        rounds = min(r.summary.n, base.summary.n) if r.summary and base and base.summary else None
        ctx = Context(r.test, r.offload, r.mtu, r.mss if r.unit == "bit/s" else None,
                      mss_of.get(BASE) if r.unit == "bit/s" else None, ref.target if ref else None, rounds)
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

def this_host() -> dict:
    """The machine a run measures on: :func:`host_info` and its name, which the plot's footer
    shows so that two saved charts from different machines are not mistaken for one another."""
    return {**host_info(), "hostname": platform.node()}


def claims_used(an: Analysis) -> list[Claim]:
    """The claims the measured labs are judged on, in the order the rows first name them."""
    keys = dict.fromkeys(r.claim for r in an.rows if r.kind == "lab" and r.claim in CLAIMS)
    return [CLAIMS[k] for k in keys if k]


def document(out: Outcome, an: Analysis, host: dict | None = None) -> dict:
    """The ``--json`` document: settings, targets, skipped labs, every raw iperf3 result, results,
    and the claims with their sources. ``host`` is the measuring machine's (a saved document's
    own, when it is analysed again), this machine's by default."""
    return {
        "schema": SCHEMA,
        "started": out.started,
        "finished": time.time(),
        "seconds": round(out.seconds, 1),
        "host": host if host is not None else this_host(),
        "settings": out.settings.as_dict(),
        "tests": [{"id": t.id, "label": t.label, "args": list(t.args), "unit": t.unit} for t in out.tests],
        "targets": [t.as_dict() for t in out.targets],
        "skipped": [s.as_dict() for s in out.skipped],
        "offload_state": out.offload_state,
        "runs": [s.as_dict() for s in out.samples],
        "results": [r.as_dict() for r in an.rows],
        "against_explain": [e.as_dict() for e in an.explain],
        "claims": [c.as_dict() for c in claims_used(an)],
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

def absolute(value: float, unit: str) -> str:
    """A rate a reader can compare with the published figures: ``17.1 Gbit/s``, ``50.2 kpkt/s``."""
    text = human_rate(value, unit)
    if text[-1:] in ("G", "M", "k"):
        return f"{text[:-1]} {text[-1]}{unit}"
    return f"{text} {unit}"


def _ratio(r: Ratio | None) -> str:
    return "—" if r is None else f"{r.value:.2f}"


def _spread(s: Summary | None) -> str:
    """(max - min) / median, or ``n=1``: one run has no spread, and 0 % would claim a quiet machine."""
    if s is None:
        return "—"
    return f"n={s.n}" if s.n < 2 else f"{s.spread:.0%}"


def _rounds(out: Outcome) -> str:
    n, d = out.settings.repeat, out.settings.duration
    return f"{n} round{'s' if n != 1 else ''} × {d} s"


@dataclass
class Notes:
    """The numbered notes of one report. The table cells say what was measured and the verdict in
    a word; why goes here, so the table fits in 100 columns. A text said twice gets one number."""

    texts: list[str] = field(default_factory=list)

    def ref(self, text: str) -> int:
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


_VERDICT_STYLE = {"holds": "green", "does not hold": "yellow", "inconclusive": "magenta"}

_RIGHT: dict[str, Any] = {"justify": "right"}
_COLUMNS: tuple[tuple[str, dict[str, Any]], ...] = (  # Table.add_column's keyword arguments
    ("lab", {}), ("test", {}), ("median", _RIGHT), ("spread", _RIGHT), ("×underlay", _RIGHT), ("×veth", _RIGHT),
    ("claim", {}), ("verdict", {}))

TENTATIVE = ("", "?: tentative, one round, so no spread to weigh the noise by (--repeat 3 or more for a verdict)")
CLAIM_LEGEND = ("", "claim: the ratio to the underlay the published claim implies (the claims and who measured "
                    "them are listed below)")


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _verdict_cell(r: Row, notes: Notes):
    """The verdict in a word, coloured, ``?`` when tentative, and the number of the note that says
    why; a row whose runs all failed says ``failed`` and its note the first error."""
    from rich.text import Text

    v = r.verdict
    if r.errors and r.summary is None:
        return Text(f"failed [{notes.ref(f'every run failed: {r.errors[0]}')}]", style="red")
    if v is None:
        cell, note = Text("baseline" if r.kind == "baseline" else "", style="dim"), ""
    else:
        cell = Text(v.status + ("?" if v.tentative else ""), style=_VERDICT_STYLE.get(v.status, "dim"))
        note = v.why if v.status == "n/a" else v.note
    if r.errors:
        note = _join(note, f"{len(r.errors)} of {len(r.values)} runs failed, first: {r.errors[0]}")
    if note:
        cell.append(f" [{notes.ref(note)}]")
    return cell


def _lab_cells(r: Row, count: int) -> list[str]:
    """The lab column of a target's ``count`` lines: its name, then its MTU and MSS one per line
    (beside the tests, not in columns of their own, so the table stays narrow)."""
    lines = [r.target] + [f"{k} {v}" for k, v in (("MTU", r.mtu), ("MSS", r.mss)) if v]
    if len(lines) > count:
        lines = lines[:count - 1] + [" ".join(lines[count - 1:])]
    return lines + [""] * (count - len(lines))


def _offload_table(out: Outcome, an: Analysis, off: str, labels: dict[str, str], notes: Notes):
    """One offload mode's table: a section per target (in the order they were measured), a line
    per test with the median rate, its spread, the ratios, the claim's band and the verdict."""
    from rich import box
    from rich.table import Table

    tb = Table(title=f"netlab bench, offload {off}: receiver-side medians of {_rounds(out)}; ratios to "
                     "the underlay", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
               padding=(0, 1, 0, 0), header_style="bold")
    for col, kw in _COLUMNS:
        tb.add_column(col, **kw)
    order = {t.id: i for i, t in enumerate(out.targets)}
    tests = {t.id: i for i, t in enumerate(out.tests)}
    rows = sorted((x for x in an.rows if x.offload == off), key=lambda x: (order.get(x.target, 99), tests.get(x.test, 9)))
    for n, tid in enumerate(dict.fromkeys(r.target for r in rows)):
        mine = [r for r in rows if r.target == tid]
        if n:
            tb.add_section()
        for r, name in zip(mine, _lab_cells(mine[0], len(mine)), strict=True):
            v = r.verdict
            band = f"{v.lo:.2f}–{v.hi:.2f}" if v and v.lo is not None and v.hi is not None else ""
            tb.add_row(name, labels.get(r.test, r.test), absolute(r.summary.median, r.unit) if r.summary else "—",
                       _spread(r.summary), _ratio(r.ratio), _ratio(r.ratio_veth), band, _verdict_cell(r, notes))
    return tb


def _explain_table(an: Analysis, labels: dict[str, str], notes: Notes):
    """netlab's build against its own explain script's, per lab, offload and test."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    te = Table(title=f"netlab build vs its own explain script (same lab, fresh namespaces): netlab / explain, "
                     f"expected ≥ {EXPLAIN_OK}", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
               padding=(0, 1, 0, 0), header_style="bold")
    for col in ("lab", "offload", "test", "netlab", "explain", "ratio", "range", "result"):
        te.add_column(col, **(_RIGHT if col in ("netlab", "explain", "ratio", "range") else {}))
    for e in an.explain:
        unit = next((r.unit for r in an.rows if r.target == e.lab and r.test == e.test), "bit/s")
        ok = e.ok
        if ok is None or ok:
            result = Text("—" if ok is None else "ok", style="green" if ok else "dim")
        else:
            result = Text(f"below [{notes.ref(f'below {EXPLAIN_OK}: {e.note}')}]",
                          style="yellow" if e.note == "within the spread" else "red")
        te.add_row(e.lab, e.offload, labels.get(e.test, e.test),
                   absolute(e.netlab.median, unit) if e.netlab else "—",
                   absolute(e.explain.median, unit) if e.explain else "—",
                   _ratio(e.ratio), f"{e.ratio.low:.2f}–{e.ratio.high:.2f}" if e.ratio else "—", result)
    return te


def _grid(rows: Sequence[tuple[str, ...]]):
    """Notes as columns, keys and then the text: the text wraps at the console's width under
    itself, so a note's second line does not start under its number."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1, 0, 1))
    width = max((len(r) for r in rows), default=2)
    for _ in range(width - 1):
        grid.add_column(no_wrap=True, justify="right")
    grid.add_column()
    for row in rows:
        grid.add_row(*row[:-1], *[""] * (width - len(row)), row[-1])
    return grid


def _table_notes(an: Analysis, off: str | None, notes: Notes, start: int):
    """Under a table: the notes it numbered first, then the legend of its marks."""
    rows = [(f"[{k}]", t) for k, t in enumerate(notes.texts[start:], start + 1)]
    mine = [r for r in an.rows if off is None or r.offload == off]
    if any(r.verdict and r.verdict.lo is not None for r in mine):
        rows.append(CLAIM_LEGEND)
    if any(r.verdict and r.verdict.tentative for r in mine):
        rows.append(TENTATIVE)
    return _grid(rows)


def _claims(an: Analysis):
    """Each claim the labs were judged on, the labs, its band and the published measurements behind it:
    "VXLAN costs 20–30 %" is only worth comparing once a reader knows who measured it, and on what."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text("Claims and where they come from (DATAPATHS.md §6):", style="bold")]
    for c in claims_used(an):
        labs = ", ".join(dict.fromkeys(r.target for r in an.rows if r.claim == c.key and r.kind == "lab"))
        rows = [("•", "", f"{c.text} — {labs}: band {c.band}")]
        rows += [("", "–", f"{s.title}: {s.figure}") for s in c.sources]
        parts.append(_grid(rows))
    return Group(*parts)


def render(out: Outcome, an: Analysis) -> list:
    """rich renderables, in order: per offload mode its table and numbered notes, the explain
    comparison, the claims with their sources, then the run's own notes (skips, drift, time)."""
    labels = {t.id: t.label for t in out.tests}
    notes = Notes()
    parts: list[Any] = []
    for off in out.settings.offloads:
        start = len(notes.texts)
        parts += [_offload_table(out, an, off, labels, notes), _table_notes(an, off, notes, start), ""]
    if an.explain:
        start = len(notes.texts)
        parts += [_explain_table(an, labels, notes), _grid([(f"[{k}]", t) for k, t in
                                                              enumerate(notes.texts[start:], start + 1)]), ""]
    if claims_used(an):
        parts += [_claims(an), ""]
    parts.append(_grid([("", line) for line in run_notes(out, an)]))
    return parts


def run_notes(out: Outcome, an: Analysis) -> list[str]:
    """Lines under the tables: skipped labs and why, drift, explain verification, time taken."""
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

def plot(out: Outcome, an: Analysis, path: str, host: dict | None = None) -> None:
    """Bar chart of the ratios to the underlay, one panel per offload mode: error bars from the
    min/max ratio, each bar labelled with its median rate (a ratio alone hides whether 0.5 is of
    1 or of 20 Gbit/s), each claim's band drawn over the one bar it was judged on, and a footer
    that says where, when and how often this was measured and who published the claims."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from ..errors import NetlabError

        raise NetlabError("--plot needs matplotlib, which is not installed",
                          "pip install 'netlab-cni[bench]' (./setup.sh installs it)") from None
    fig = figure(out, an, host, plt)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def footer(out: Outcome, an: Analysis, host: dict | None = None) -> list[str]:
    """The plot's footer lines: the machine, kernel, date and rounds, then each claim's sources."""
    h = host if host is not None else this_host()
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(out.started))
    tentative = " (one round: verdicts tentative)" if any(r.verdict and r.verdict.tentative for r in an.rows) else ""
    lines = [f"host {h.get('hostname', '(not recorded)')} · kernel {h.get('kernel', '?')} · {h.get('cpus', '?')} CPUs · "
             f"{h.get('iperf3', 'iperf3 ?')} · {when} · {_rounds(out)} per test{tentative}"]
    for c in claims_used(an):
        lines.append(f"“{c.text}”: " + "; ".join(f"{s.cite} ({s.figure})" if len(c.sources) == 1 else s.title
                                                  for s in c.sources))
    return lines


@dataclass
class _Bar:
    x: float
    row: Row


def _bars(an: Analysis, ids: list[str], test: str, off: str, k: int, width: float, n: int) -> list[_Bar]:
    """Where each target's bar of one test stands in its group, for the rows that have a ratio."""
    found = []
    for i, tid in enumerate(ids):
        r = an.row(tid, test, off)
        if r is not None and r.ratio is not None and r.summary is not None:
            found.append(_Bar(i + (k - (n - 1) / 2) * width, r))
    return found


def _panel(ax, out: Outcome, an: Analysis, off: str) -> None:
    """One offload mode: grouped bars per target, value labels above, claim bands on their bars."""
    from matplotlib.patches import Rectangle

    tests = [t for t in out.tests if any(an.row(x.id, t.id, off) for x in out.targets)]
    ids = [t.id for t in out.targets if any(an.row(t.id, x.id, off) for x in tests)]
    width = 0.8 / max(len(tests), 1)
    top, banded = 1.0, False
    for k, test in enumerate(tests):
        bars = _bars(an, ids, test.id, off, k, width, len(tests))
        ratios = [b.row.ratio for b in bars if b.row.ratio]
        ax.bar([b.x for b in bars], [q.value for q in ratios], width,
               yerr=[[max(0.0, q.value - q.low) for q in ratios], [max(0.0, q.high - q.value) for q in ratios]],
               capsize=3, label=f"{test.label} ({test.unit})", zorder=2)
        for b in bars:
            v, q, s = b.row.verdict, b.row.ratio, b.row.summary
            assert q is not None and s is not None  # _bars keeps only rows with both
            above = q.high
            if v is not None and v.lo is not None and v.hi is not None:
                ax.add_patch(Rectangle((b.x - width / 2, v.lo), width, max(v.hi - v.lo, 0.005), fill=False,
                                       hatch="///", edgecolor="black", linewidth=0.8, zorder=3,
                                       label=None if banded else "claimed range (judged on this bar)"))
                banded, above = True, max(above, v.hi)
            ax.annotate(absolute(s.median, b.row.unit), (b.x, above),
                        xytext=(0, 3), textcoords="offset points", rotation=90, ha="center", va="bottom",
                        fontsize=7, zorder=4)
            top = max(top, above)
    ax.axhline(1.0, color="grey", linewidth=0.8, zorder=1)
    ax.set_ylim(0, top * 1.55)
    ax.set_xticks(range(len(ids)))
    ax.set_xticklabels(ids, rotation=20, ha="right")
    ax.set_ylabel("ratio to the underlay's median")
    ax.set_title(f"netlab bench, offload {off}: ratio to the underlay (bars), min/max (error bars), median rate (labels)",
                 fontsize=10)
    ax.legend(fontsize="small", loc="upper right", ncols=2)


def figure(out: Outcome, an: Analysis, host: dict | None, plt):
    """The chart as a matplotlib figure (tests read its texts instead of looking at pixels)."""
    offs = out.settings.offloads
    lines = footer(out, an, host)
    fig, axes = plt.subplots(len(offs), 1, squeeze=False,
                             figsize=(max(9.0, 1.3 * len(out.targets) + 3), 4.6 * len(offs) + 0.22 * len(lines)))
    for ax, off in zip(axes[:, 0], offs, strict=True):
        _panel(ax, out, an, off)
    height = fig.get_figheight()
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, ha="left", va="bottom", color="#333333", wrap=True)
    fig.tight_layout(rect=(0, (0.13 * len(lines) + 0.1) / height, 1, 1))
    return fig
