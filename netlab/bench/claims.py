"""The seed's performance claims, which lab each one is about, and a one-line verdict per figure.

The seed (the articles netlab follows) says: VXLAN costs 20–30 % of throughput, host-gw about 10 %, flannel's UDP mode is far
worse (three user/kernel crossings), Calico's BGP mode is about as fast as host-gw, and IPIP costs
about as much as VXLAN. Each claim becomes a range of expected *ratios to the underlay baseline*;
the relational ones ("far worse than VXLAN", "as fast as host-gw") are ranges around the ratio
measured for the reference lab in the same run, and fall back to the seed's own figure when no
such lab ran.

Which claim a lab is about is read from its plan, not from its name, so labs added later are
classified without touching this file: the encapsulation the datapath declares on the plan
(:attr:`netlab.plan.Plan.encap`) says VXLAN, flannel's bare IP in UDP or IPIP; a multi-node lab
without one is routed (host-gw, or Calico BGP when it is Calico's) or Docker's NAT bridge.

A verdict never says "wrong": it says whether the claim *holds here* and, when it does not, the
one mechanism that explains the difference on a one-machine namespace lab (offloads hide
per-packet cost, MTU shrinks the payload per packet, or the veth path is CPU-bound and dominates
both the lab and its baseline). DATAPATHS.md §6 has the published numbers behind these words.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..encap import Encap
from .stats import Ratio

#: tolerance for "about as fast as": the reference's ratio ± 10 %
ABOUT = 0.10
#: a ratio whose min/max range is wider than this cannot confirm a claim by overlap alone
WIDE = 0.30


@dataclass(frozen=True)
class Source:
    """A published measurement behind a claim (DATAPATHS.md §6, with the repositories of §0).

    A reader who sees "VXLAN costs 20–30 %" needs to know who measured it and on what, to judge
    whether a two-core namespace lab should reproduce it; so every claim names its sources."""

    cite: str  # short, for a table note or a plot footer: "flannel#1816"
    title: str  # what it is and when: "flannel-io/flannel issue #1816 (2023)"
    figure: str  # what it reports, and on which setup
    url: str = ""

    def as_dict(self) -> dict:
        return {"cite": self.cite, "title": self.title, "figure": self.figure, "url": self.url}


def _gh(repo: str, kind: str, number: int, cite: str, year: int, figure: str) -> Source:
    """A GitHub issue or pull request as a source: its address follows from repository and number."""
    word = {"issues": "issue", "pull": "pull request"}[kind]
    return Source(cite, f"{repo} {word} #{number} ({year})", figure, f"https://github.com/{repo}/{kind}/{number}")


_CUERICLEE = "cuericlee.github.io blog (CNI comparison, unspecified VMs)"
_IB2020 = "https://github.com/InfraBuilder/benchmark-k8s-cni-2020-08"
_IB2024 = "https://github.com/InfraBuilder/benchmark-k8s-cni-2024-01"
_DAOCLOUD = "https://github.com/DaoCloud/DaoCloud-docs/blob/main/docs/en/docs/network/performance/cni-performance.md"

SOURCES: dict[str, tuple[Source, ...]] = {
    "vxlan": (
        _gh("flannel-io/flannel", "issues", 976, "flannel#976", 2018,
            'production cluster (also kubernetes#62263): VXLAN pod to pod "slow down about 20%"'),
        _gh("flannel-io/flannel", "issues", 1816, "flannel#1816", 2023,
            '10 GbE bare metal, 9.19 Gbit/s host to host: VXLAN pod to pod "about 30% bandwidth drop"'),
        Source("InfraBuilder 2020/2024", "Ducastel / InfraBuilder CNI benchmarks (2020-08, 2024-01)",
               "at MTU 9000 or with several streams VXLAN costs ≈0–3 %: 9690 Mbit/s on 10 GbE; the 2024 "
               "single-stream loss (20.0 vs 31.4 Gbit/s) is the pod path's, routed calico 19.7", _IB2020),
    ),
    "host-gw": (
        Source("cuericlee", _CUERICLEE, "flannel host-gw at 93 % of host to host"),
        Source("InfraBuilder 2024", "Ducastel / InfraBuilder CNI benchmark 2024-01 (40 GbE, MTU 9000)",
               "routed CNIs single-stream 19.7–22.7 vs bare metal 31.4 Gbit/s: ~28–37 % at 40 GbE", _IB2024),
    ),
    "flannel-udp": (
        _gh("kubernetes/kubernetes", "pull", 17877, "kubernetes#17877", 2015,
            "qperf: flannel UDP 28.7 MB/s vs VXLAN 47.8 MB/s, latency 200 vs 127 µs"),
        Source("flannel docs", "flannel-io/flannel Documentation/backends.md",
               'UDP backend "for debugging only": two user/kernel copies and a TUN read/write per packet',
               "https://github.com/flannel-io/flannel/blob/master/Documentation/backends.md"),
        _gh("flannel-io/flannel", "issues", 784, "flannel#784", 2017, 'UDP backend 75.8 Mbit/s ("extreme low")'),
    ),
    "calico-bgp": (
        Source("cuericlee", _CUERICLEE, "Calico BGP 93 % vs flannel host-gw 93 % of host to host"),
        Source("InfraBuilder 2024", "Ducastel / InfraBuilder CNI benchmark 2024-01 (40 GbE, MTU 9000)",
               "calico unencapsulated 19.7 vs kube-router (routed) 22.7 Gbit/s, single stream", _IB2024),
    ),
    "ipip": (
        Source("InfraBuilder 2020", "Ducastel / InfraBuilder CNI benchmark 2020-08 (10 GbE, MTU 9000)",
               "calico IPIP 9834 vs flannel VXLAN 9690 Mbit/s (tuned MTUs)", _IB2020),
        Source("DaoCloud", "DaoCloud docs, CNI performance report (Mellanox CX5, 9.16 Gbit/s node to node)",
               "calico IPIP 4.51 vs calico VXLAN 1.37 Gbit/s: IPIP usually a bit better", _DAOCLOUD),
        Source("cuericlee", _CUERICLEE, "Calico BGP+IPIP 64 % vs flannel VXLAN 45 % of host to host"),
    ),
}


@dataclass(frozen=True)
class Claim:
    """A published performance claim as a ratio range. ``ref`` names another claim whose measured
    ratio the range is relative to (``rel_lo``/``rel_hi`` are factors); ``lo``/``hi`` are the
    absolute fallback. ``sources`` say who measured it (:data:`SOURCES`)."""

    key: str
    text: str
    lo: float
    hi: float
    ref: str | None = None
    rel_lo: float = 0.0
    rel_hi: float = 0.0
    encapsulates: bool = False  # the path wraps packets (GSO hides that cost with offloads on)

    def range(self, ref_ratio: float | None) -> tuple[float, float, bool]:
        """(lo, hi, relative?) for this run: relative to the reference when it was measured."""
        if self.ref and ref_ratio is not None:
            return self.rel_lo * ref_ratio, self.rel_hi * ref_ratio, True
        return self.lo, self.hi, False

    @property
    def sources(self) -> tuple[Source, ...]:
        return SOURCES.get(self.key, ())

    @property
    def band(self) -> str:
        """How the expected range is set, in words, for the notes and the JSON."""
        if self.ref:
            return (f"{self.rel_lo:g}–{self.rel_hi:g} × the {self.ref} lab's ratio in the same run "
                    f"({self.lo:.2f}–{self.hi:.2f} when none ran)")
        return f"{self.lo:.2f}–{self.hi:.2f} of the underlay"

    def as_dict(self) -> dict:
        return {"key": self.key, "text": self.text, "lo": self.lo, "hi": self.hi, "ref": self.ref,
                "rel_lo": self.rel_lo, "rel_hi": self.rel_hi, "band": self.band,
                "sources": [s.as_dict() for s in self.sources]}


CLAIMS: dict[str, Claim] = {c.key: c for c in (
    Claim("vxlan", "VXLAN costs 20–30 %", 0.70, 0.80, encapsulates=True),
    Claim("host-gw", "host-gw costs ~10 %", 0.85, 0.95),
    Claim("flannel-udp", "flannel UDP is far worse than VXLAN (3 user/kernel crossings)", 0.0, 0.40, ref="vxlan",
          rel_lo=0.0, rel_hi=0.5, encapsulates=True),
    Claim("calico-bgp", "Calico BGP ≈ host-gw", 0.85, 0.95, ref="host-gw", rel_lo=1 - ABOUT, rel_hi=1 + ABOUT),
    Claim("ipip", "IPIP ≈ VXLAN", 0.70, 0.80, ref="vxlan", rel_lo=1 - ABOUT, rel_hi=1 + ABOUT,
          encapsulates=True),
)}


#: The claim about each encapsulation, by :attr:`netlab.encap.Encap.name`: the seed's figures are
#: about the wrapping (VXLAN, flannel's UDP forwarder, IPIP), whichever datapath does it.
BY_ENCAP = {"vxlan": "vxlan", "udp": "flannel-udp", "ipip": "ipip"}


def classify(datapath: str, encap: Encap | None, nodes: int) -> str | None:
    """The claim a lab is about, from the encapsulation its plan declares (``plan.encap``).

    Only labs without encapsulation need the datapath's name: Docker's NAT bridge is not about
    routing pods (None), Calico's BGP is compared with host-gw, any other routed datapath is
    host-gw. Returns None for labs the seed makes no throughput claim about (one node, Docker, an
    encapsulation it says nothing about).
    """
    if nodes < 2:
        return None
    if encap is not None:
        return BY_ENCAP.get(encap.name)
    if "docker" in datapath:
        return None
    if "calico" in datapath:
        return "calico-bgp"
    return "host-gw"


@dataclass(frozen=True)
class Verdict:
    """``status`` is ``holds``, ``does not hold``, ``inconclusive`` (the runs spread too widely to
    tell) or ``n/a``; ``why`` is one line.

    The parts of ``why`` are kept apart too, so the table can show the band beside the ratio and
    number only what it cannot show (``note``: the mechanism, a wide spread, the reference lab).
    ``tentative`` marks a verdict from a single round: there is no spread to weigh the noise by."""

    status: str
    why: str
    lo: float | None = None
    hi: float | None = None
    note: str = ""
    tentative: bool = False

    @property
    def line(self) -> str:
        mark = " (tentative: one round)" if self.tentative else ""
        return f"{self.status}{mark}: {self.why}" if self.why else self.status + mark

    def as_dict(self) -> dict:
        return {"status": self.status, "why": self.why, "tentative": self.tentative,
                "band": [self.lo, self.hi] if self.lo is not None and self.hi is not None else None,
                "note": self.note}


@dataclass(frozen=True)
class Context:
    """What the verdict may blame: the test, offloads, and MTU/MSS of lab and baseline; and how
    many rounds the figures rest on (fewer than two makes the verdict tentative)."""

    test: str  # "tcp", "tcp-P", "udp-pps"
    offload: str  # "on" or "off"
    mtu: int | None = None
    mss: int | None = None
    base_mss: int | None = None
    ref_lab: str | None = None  # which lab the relative claim was measured against
    rounds: int | None = None  # successful runs behind the ratio (the fewer of lab and baseline)


def mss_loss(mss: int | None, base_mss: int | None) -> float:
    """Fraction of payload per packet lost to a smaller MSS (the MTU effect on TCP)."""
    if not mss or not base_mss or mss >= base_mss:
        return 0.0
    return 1 - mss / base_mss


def _too_fast(claim: Claim, ctx: Context) -> str:
    """Why a path costs less than claimed here: the mechanism that hides its cost."""
    if ctx.test == "udp-pps":
        return "CPU-bound: the sender's per-datagram syscall cost, not the path, sets the packet rate"
    if claim.encapsulates and ctx.offload == "on":
        return "offload: GSO moves 64 KB segments through the tunnel, so per-packet cost is paid once per 64 KB"
    if claim.key == "flannel-udp":
        return "CPU-bound veth path: the reference is slowed as much as the userspace forwarder here"
    return ("CPU-bound veth path: the baseline pays the same veth/bridge hops per packet, "
            "so the extra work is a small share")


def _too_slow(lo: float, measured: Ratio, ctx: Context) -> str:
    """Why a path costs more than claimed here: a smaller MSS if that accounts for the gap,
    otherwise the per-packet CPU cost of the extra hops."""
    loss = mss_loss(ctx.mss, ctx.base_mss)
    mtu = f"MTU {ctx.mtu}" if ctx.mtu else "a smaller MTU"
    gap = (lo - measured.value) / lo if lo else 1.0  # how far below the claim's lower edge
    if ctx.test != "udp-pps" and loss and gap <= loss + 0.02:
        return f"MTU: {mtu} gives MSS {ctx.mss} vs {ctx.base_mss}, {loss:.1%} less payload per packet"
    if ctx.test == "udp-pps":
        return "CPU-bound veth path: every small datagram pays each extra hop and header on 2 shared cores"
    share = f"; {mtu} explains only {loss:.0%}" if loss else ""
    off = ", offloads off" if ctx.offload == "off" else ""
    return f"CPU-bound veth path: extra hops cost CPU per packet on 2 shared cores{off}{share}"


def _against(claim: Claim, relative: bool, ctx: Context, ref_ratio: float | None) -> str:
    if relative and ctx.ref_lab and ref_ratio is not None:
        return f" (vs {ctx.ref_lab} {ref_ratio:.2f})"
    if claim.ref and not relative:
        return f" (no {claim.ref} lab measured: seed's figure used)"
    return ""


def _reference(claim: Claim, relative: bool, ctx: Context, ref_ratio: float | None) -> str:
    """The note's words for where a relative band came from (the table shows only the band)."""
    if relative and ref_ratio is not None:
        return f"band = {claim.rel_lo:g}–{claim.rel_hi:g} × {ctx.ref_lab or claim.ref}'s ratio {ref_ratio:.2f}"
    if claim.ref:
        return f"no {claim.ref} lab measured: the claim's own figure used"
    return ""


def _join(*parts: str) -> str:
    """The note: the parts of ``why`` the table's cells do not show, without their parentheses."""
    def bare(p: str) -> str:
        p = p.strip()
        return p[1:-1] if p.startswith("(") and p.endswith(")") else p
    return "; ".join(bare(p) for p in parts if p)


def verdict(claim: Claim | None, measured: Ratio | None, ctx: Context, ref_ratio: float | None = None) -> Verdict:
    """Does the claim hold for this figure, and if not, which mechanism explains it (one line)."""
    if claim is None:
        return Verdict("n/a", "no published throughput claim for this datapath")
    if measured is None:
        return Verdict("n/a", "no successful measurement")
    lo, hi, relative = claim.range(ref_ratio)
    tentative = ctx.rounds is not None and ctx.rounds < 2
    against = _against(claim, relative, ctx, ref_ratio)
    ref = _reference(claim, relative, ctx, ref_ratio)
    rng = f"{lo:.2f}–{hi:.2f}"
    wide = measured.high - measured.low > WIDE
    spread = f"{measured.low:.2f}–{measured.high:.2f}"
    if lo <= measured.value <= hi:
        but = f" (but the runs spread {spread})" if wide else ""
        return Verdict("holds", f"ratio {measured.value:.2f} in {rng}{against}{but}", lo, hi,
                       _join(ref, f"the runs spread {spread}, wider than {WIDE:.2f}" if wide else ""), tentative)
    if measured.overlaps(lo, hi):
        if wide:
            noisy = (f"the runs spread {spread}: too noisy to tell "
                     "(more --repeat/--duration, a quieter machine)")
            return Verdict("inconclusive", f"ratio {measured.value:.2f} vs {rng}{against}, but {noisy}", lo, hi,
                           _join(ref, noisy), tentative)
        within = f"within the spread ({spread} meets {rng})"
        return Verdict("holds", f"{within}{against}", lo, hi, _join(within, ref), tentative)
    why = _too_fast(claim, ctx) if measured.value > hi else _too_slow(lo, measured, ctx)
    return Verdict("does not hold", f"ratio {measured.value:.2f} vs {rng}{against} — {why}", lo, hi,
                   _join(ref, why), tentative)
