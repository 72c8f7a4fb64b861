"""netlab bench's report from canned results, no root and no iperf3: the table fits in 100
columns with its explanations as numbered notes, one round shows ``n=1`` and tentative verdicts,
every claim names who measured it (table, JSON, plot), and the plot labels its bars with their
rates, draws each claim band over its own bar only, and has a footer with host, kernel, date and
rounds. The documents go through ``netlab bench --from-json`` as a user's saved run would."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab.bench import report
from netlab.bench.claims import CLAIMS
from netlab.cli.bench import command, read_document

TESTS = [("tcp", "TCP ×1", [], "bit/s"), ("tcp-P", "TCP ×4", ["-P", "4"], "bit/s"),
         ("udp-pps", "UDP 64 B", ["-u", "-b", "0", "-l", "64"], "pkt/s")]
# target: (kind, datapath, claim, MTU, MSS, TCP ×1 Gbit/s, TCP ×4 Gbit/s, UDP kpkt/s)
TARGETS = {
    "underlay": ("baseline", None, None, 1500, 1448, 17.0, 12.0, 50.0),
    "veth": ("baseline", None, None, 1500, 1448, 15.0, 15.0, 68.0),
    "vxlan": ("lab", "flannel-vxlan", "vxlan", 1450, 1398, 8.1, 7.8, 33.0),
    "calico-vxlan": ("lab", "calico-vxlan", "vxlan", 1450, 1398, 12.75, 9.0, 48.0),
    "flannel-udp": ("lab", "flannel-udp", "flannel-udp", 1472, 1420, 0.22, 0.28, 28.0),
    "host-gw": ("lab", "flannel-host-gw", "host-gw", 1500, 1448, 5.4, 8.3, 60.0),
    "calico": ("lab", "calico-bgp", "calico-bgp", 1500, 1448, 11.7, 9.6, 77.0),
}
HOST = {"kernel": "6.1.0-test", "cpus": 2, "machine": "x86_64", "iperf3": "iperf 3.12", "hostname": "benchbox"}
WIDTH = 100


def _target(tid: str) -> dict:
    kind, datapath, claim, mtu, *_ = TARGETS[tid]
    ep = {"ns": f"t-{tid}-a", "host": "node1-pod1", "ip": "10.0.0.1"}
    return {"id": tid, "kind": kind, "lab": None if kind == "baseline" else tid, "instance": f"t-{tid}",
            "datapath": datapath, "claim": claim, "brought_up": True, "mtu": mtu, "src": ep,
            "dst": {**ep, "ip": "10.0.0.2"}, "sender_namespaces": [ep["ns"]], "notes": []}


def _run(tid: str, k: int, rnd: int, offload: str) -> dict:
    test, _, _, unit = TESTS[k]
    scale = 1e9 if unit == "bit/s" else 1e3
    wobble = 1 + 0.04 * (rnd - 1) * (-1) ** k  # a few % between rounds: a quiet machine
    mss = TARGETS[tid][4] if unit == "bit/s" else None
    return {"target": tid, "test": test, "offload": offload, "round": rnd, "value": TARGETS[tid][5 + k] * scale * wobble,
            "unit": unit, "error": None, "mss": mss, "started": 1.7e9 + rnd, "seconds": 1.0, "client_pid": 1,
            "server_pid": 2, "client": {}, "server": {}}


def canned(rounds: int = 1, offloads: tuple[str, ...] = ("on",)) -> dict:
    """A netlab-bench/1 document as ``bench --json`` writes it, with made-up but plausible rates."""
    return {
        "schema": "netlab-bench/1", "started": 1764590400.0, "finished": 1764590460.0, "seconds": 60.0,
        "host": HOST,
        "settings": {"labs": [], "duration_s": 3, "repeat": rounds, "parallel": 4, "udp_size": 64,
                     "offload": list(offloads), "against_explain": False, "prefix": "t-"},
        "tests": [{"id": i, "label": lab, "args": a, "unit": u} for i, lab, a, u in TESTS],
        "targets": [_target(t) for t in TARGETS],
        "skipped": [{"lab": "docker-nat", "reason": "pod addresses overlap across nodes (172.17.0.2 is planned in "
                                                     "2 namespaces): pods cross nodes only through published ports"}],
        "offload_state": {}, "runs": [_run(t, k, r, off) for off in offloads for r in range(1, rounds + 1)
                                      for k in range(len(TESTS)) for t in TARGETS],
        "results": [], "against_explain": [], "pids": [],
    }


def saved(tmp_path: Path, doc: dict) -> str:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc))
    return str(path)


def bench(*args: str) -> str:
    r = CliRunner().invoke(command, list(args), env={"COLUMNS": str(WIDTH)}, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def analysed(doc: dict):
    out = report.outcome_from_document(doc)
    an = report.analyse([t.as_dict() for t in out.targets], [s.as_dict() for s in out.samples],
                        [t.id for t in out.tests], out.settings.offloads)
    return out, an


@pytest.mark.parametrize("rounds,offloads", [(1, ("on",)), (3, ("on", "off"))])
def test_the_table_and_its_notes_fit_in_100_columns(tmp_path, rounds, offloads):
    text = bench("--from-json", saved(tmp_path, canned(rounds, offloads)))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    table = [line for line in lines if line.startswith(("vxlan ", "calico-vxlan "))]
    assert table and all("CPU-bound" not in line for line in table)  # explanations are notes, not cells
    assert "[1]" in text and any(line.lstrip().startswith("[1] ") for line in lines)
    # MTU and MSS stand under the lab's name, beside its tests
    assert any(line.startswith("MTU 1450") for line in lines) and any(line.startswith("MSS 1398") for line in lines)
    assert "offload on" in text and (("offload off" in text) == ("off" in offloads))


def test_the_notes_are_numbered_once_and_each_number_is_explained(tmp_path):
    text = bench("--from-json", saved(tmp_path, canned(3, ("on", "off"))))
    used = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
    explained = [int(line.split("]")[0].strip(" [")) for line in text.splitlines()
                 if line.lstrip().startswith("[") and line.lstrip()[1:2].isdigit()]
    assert sorted(explained) == sorted(set(explained)) == sorted(used)  # each note once, none missing


def test_one_round_shows_n1_and_tentative_verdicts(tmp_path):
    text = bench("--from-json", saved(tmp_path, canned(1)))
    vxlan = next(line for line in text.splitlines() if line.startswith("vxlan "))
    assert " n=1 " in vxlan and "0%" not in vxlan
    assert "does not hold?" in vxlan and "tentative" in text
    out, an = analysed(canned(1))
    lab_rows = [r for r in an.rows if r.kind == "lab"]
    assert lab_rows and all(r.verdict and r.verdict.tentative for r in lab_rows)
    doc = report.document(out, an, HOST)
    assert all(x["verdict"]["tentative"] for x in doc["results"] if x["kind"] == "lab")
    assert all(x["summary"]["n"] == 1 for x in doc["results"])


def test_several_rounds_show_a_spread_and_firm_verdicts(tmp_path):
    text = bench("--from-json", saved(tmp_path, canned(3)))
    vxlan = next(line for line in text.splitlines() if line.startswith("vxlan "))
    assert "n=" not in vxlan and "%" in vxlan and "?" not in vxlan and "tentative" not in text
    _, an = analysed(canned(3))
    assert not any(r.verdict and r.verdict.tentative for r in an.rows)


def test_the_table_names_every_claim_and_who_measured_it(tmp_path):
    text = bench("--from-json", saved(tmp_path, canned(1)))
    flat = " ".join(text.split())  # the notes wrap at 100 columns
    assert "the seed" not in flat
    for key in ("vxlan", "host-gw", "flannel-udp", "calico-bgp"):
        c = CLAIMS[key]
        assert c.sources, key
        assert c.text in flat, c.text
        for s in c.sources:
            assert s.title in flat and s.figure in flat, s.cite
    assert "flannel-io/flannel issue #1816 (2023)" in flat and "kubernetes/kubernetes pull request #17877" in flat
    assert "VXLAN costs 20–30 % — vxlan, calico-vxlan: band 0.70–0.80" in flat


def test_the_json_carries_the_claims_their_sources_and_the_bands(tmp_path):
    r = CliRunner().invoke(command, ["--from-json", saved(tmp_path, canned(1)), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["host"] == HOST  # the machine that measured, not the one that re-read the file
    claims = {c["key"]: c for c in doc["claims"]}
    assert set(claims) == {"vxlan", "flannel-udp", "host-gw", "calico-bgp"}
    vx = claims["vxlan"]
    assert vx["text"] == "VXLAN costs 20–30 %" and (vx["lo"], vx["hi"]) == (0.70, 0.80)
    assert {s["cite"] for s in vx["sources"]} >= {"flannel#976", "flannel#1816"}
    assert all(s["title"] and s["figure"] for c in claims.values() for s in c["sources"])
    assert any(s["url"] == "https://github.com/flannel-io/flannel/issues/1816" for s in vx["sources"])
    row = next(x for x in doc["results"] if (x["target"], x["test"]) == ("vxlan", "tcp"))
    assert row["claim"]["sources"] == vx["sources"]
    assert row["verdict"]["band"] == [0.70, 0.80] and row["verdict"]["status"] == "does not hold"
    udp = next(x for x in doc["results"] if (x["target"], x["test"]) == ("flannel-udp", "tcp"))
    assert udp["verdict"]["band"][1] == pytest.approx(0.5 * 8.1 / 17.0)  # relative to vxlan, same run


def test_the_claim_bands_are_unchanged():
    bands = {k: (c.lo, c.hi, c.ref, c.rel_lo, c.rel_hi) for k, c in CLAIMS.items()}
    assert bands == {"vxlan": (0.70, 0.80, None, 0.0, 0.0), "host-gw": (0.85, 0.95, None, 0.0, 0.0),
                     "flannel-udp": (0.0, 0.40, "vxlan", 0.0, 0.5),
                     "calico-bgp": (0.85, 0.95, "host-gw", pytest.approx(0.9), pytest.approx(1.1)),
                     "ipip": (0.70, 0.80, "vxlan", pytest.approx(0.9), pytest.approx(1.1))}


def test_read_document_keeps_the_measuring_host(tmp_path):
    out, host = read_document(saved(tmp_path, canned(1)))
    assert host == HOST and out.settings.repeat == 1


# -- the plot ----------------------------------------------------------------------------------------

def _figure(doc: dict):
    plt = pytest.importorskip("matplotlib.pyplot")
    out, an = analysed(doc)
    return report.figure(out, an, doc["host"], plt), an, plt


def test_the_plot_labels_every_bar_with_its_rate():
    fig, an, plt = _figure(canned(1))
    try:
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.texts]
        for r in an.rows:
            assert r.summary
            assert report.absolute(r.summary.median, r.unit) in labels, (r.target, r.test)
        assert "17 Gbit/s" in labels and "50 kpkt/s" in labels and "220 Mbit/s" in labels
        assert len(labels) == len(an.rows)
    finally:
        plt.close(fig)


def test_each_claim_band_is_drawn_over_its_own_bar_only():
    from matplotlib.patches import Rectangle

    fig, an, plt = _figure(canned(1))
    try:
        ax = fig.axes[0]
        bars = [p for p in ax.patches if type(p) is Rectangle and p.get_fill()]
        bands = [p for p in ax.patches if type(p) is Rectangle and not p.get_fill()]
        judged = [r for r in an.rows if r.verdict and r.verdict.lo is not None]
        assert len(bands) == len(judged) == 5 * 3
        for band in bands:
            x0, x1 = band.get_x(), band.get_x() + band.get_width()
            under = [b for b in bars if b.get_x() < x1 - 1e-9 and b.get_x() + b.get_width() > x0 + 1e-9]
            assert len(under) == 1  # one bar, one test: not the whole group of the lab
            assert under[0].get_x() == pytest.approx(x0) and under[0].get_width() == pytest.approx(band.get_width())
        # the vxlan TCP ×1 band is the claim's 0.70–0.80
        assert any(b.get_y() == pytest.approx(0.70) and b.get_height() == pytest.approx(0.10) for b in bands)
    finally:
        plt.close(fig)


def test_the_plot_footer_names_host_kernel_date_rounds_and_claim_sources():
    fig, an, plt = _figure(canned(1))
    try:
        footer = "\n".join(t.get_text() for t in fig.texts)
        assert "host benchbox" in footer and "kernel 6.1.0-test" in footer
        assert "2025-12-01" in footer or "2025-11-30" in footer  # started, in local time
        assert "1 round × 3 s" in footer and "tentative" in footer
        for c in report.claims_used(an):
            assert c.text in footer
            assert all(s.title in footer or s.cite in footer for s in c.sources)
    finally:
        plt.close(fig)


def test_two_offload_modes_draw_two_panels_with_one_footer():
    fig, an, plt = _figure(canned(3, ("on", "off")))
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert any("offload on" in t for t in titles) and any("offload off" in t for t in titles)
        assert len(fig.texts) == 1 and "3 rounds × 3 s" in fig.texts[0].get_text()
        assert "tentative" not in fig.texts[0].get_text()
    finally:
        plt.close(fig)


def test_plot_writes_a_png_from_a_saved_run(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    text = bench("--from-json", saved(tmp_path, canned(1)), "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "plot:" in text
