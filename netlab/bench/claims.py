"""The seed's performance claims, which lab each one is about, and a one-line verdict per figure.

The seed says: VXLAN costs 20–30 % of throughput, host-gw about 10 %, flannel's UDP mode is far
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
class Claim:
    """A seed claim as a ratio range. ``ref`` names another claim whose measured ratio the range
    is relative to (``rel_lo``/``rel_hi`` are factors); ``lo``/``hi`` are the absolute fallback."""

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


CLAIMS: dict[str, Claim] = {c.key: c for c in (
    Claim("vxlan", "VXLAN costs 20–30 %", 0.70, 0.80, encapsulates=True),
    Claim("host-gw", "host-gw costs ~10 %", 0.85, 0.95),
    Claim("flannel-udp", "far worse than VXLAN (3 user/kernel crossings)", 0.0, 0.40, ref="vxlan",
          rel_lo=0.0, rel_hi=0.5, encapsulates=True),
    Claim("calico-bgp", "≈ host-gw", 0.85, 0.95, ref="host-gw", rel_lo=1 - ABOUT, rel_hi=1 + ABOUT),
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
    tell) or ``n/a``; ``why`` is one line."""

    status: str
    why: str

    @property
    def line(self) -> str:
        return f"{self.status}: {self.why}" if self.why else self.status

    def as_dict(self) -> dict:
        return {"status": self.status, "why": self.why}


@dataclass(frozen=True)
class Context:
    """What the verdict may blame: the test, offloads, and MTU/MSS of lab and baseline."""

    test: str  # "tcp", "tcp-P", "udp-pps"
    offload: str  # "on" or "off"
    mtu: int | None = None
    mss: int | None = None
    base_mss: int | None = None
    ref_lab: str | None = None  # which lab the relative claim was measured against


def mss_loss(mss: int | None, base_mss: int | None) -> float:
    """Fraction of payload per packet lost to a smaller MSS (the MTU effect on TCP)."""
    if not mss or not base_mss or mss >= base_mss:
        return 0.0
    return 1 - mss / base_mss


def verdict(claim: Claim | None, measured: Ratio | None, ctx: Context, ref_ratio: float | None = None) -> Verdict:
    """Does the claim hold for this figure, and if not, which mechanism explains it (one line)."""
    if claim is None:
        return Verdict("n/a", "the seed makes no throughput claim for this datapath")
    if measured is None:
        return Verdict("n/a", "no successful measurement")
    lo, hi, relative = claim.range(ref_ratio)
    against = f" (vs {ctx.ref_lab} {ref_ratio:.2f})" if relative and ctx.ref_lab and ref_ratio is not None else ""
    if claim.ref and not relative:
        against = f" (no {claim.ref} lab measured: seed's figure used)"
    rng = f"{lo:.2f}–{hi:.2f}"
    wide = measured.high - measured.low > WIDE
    spread = f"{measured.low:.2f}–{measured.high:.2f}"
    if lo <= measured.value <= hi:
        return Verdict("holds", f"ratio {measured.value:.2f} in {rng}{against}"
                                + (f" (but the runs spread {spread})" if wide else ""))
    if measured.overlaps(lo, hi):
        if wide:
            return Verdict("inconclusive", f"ratio {measured.value:.2f} vs {rng}{against}, but the runs spread "
                                           f"{spread}: too noisy to tell (more --repeat/--duration, a quieter machine)")
        return Verdict("holds", f"within the spread ({spread} meets {rng}){against}")
    above = measured.value > hi
    loss = mss_loss(ctx.mss, ctx.base_mss)
    mtu = f"MTU {ctx.mtu}" if ctx.mtu else "a smaller MTU"
    if above:
        if ctx.test == "udp-pps":
            why = "CPU-bound: the sender's per-datagram syscall cost, not the path, sets the packet rate"
        elif claim.encapsulates and ctx.offload == "on":
            why = "offload: GSO moves 64 KB segments through the tunnel, so per-packet cost is paid once per 64 KB"
        elif claim.key == "flannel-udp":
            why = "CPU-bound veth path: the reference is slowed as much as the userspace forwarder here"
        else:
            why = ("CPU-bound veth path: the baseline pays the same veth/bridge hops per packet, "
                   "so the extra work is a small share")
    else:
        gap = (lo - measured.value) / lo if lo else 1.0  # how far below the claim's lower edge
        if ctx.test != "udp-pps" and loss and gap <= loss + 0.02:
            why = f"MTU: {mtu} gives MSS {ctx.mss} vs {ctx.base_mss}, {loss:.1%} less payload per packet"
        elif ctx.test == "udp-pps":
            why = "CPU-bound veth path: every small datagram pays each extra hop and header on 2 shared cores"
        else:
            share = f"; {mtu} explains only {loss:.0%}" if loss else ""
            off = ", offloads off" if ctx.offload == "off" else ""
            why = f"CPU-bound veth path: extra hops cost CPU per packet on 2 shared cores{off}{share}"
    return Verdict("does not hold", f"ratio {measured.value:.2f} vs {rng}{against} — {why}")
