"""``netlab trace --json`` against tshark, hop by hop, on every lab this kernel runs (issue 12).

The trace decodes its own sightings with scapy. This test takes an independent record of the
same probe: before the trace starts, one ``tcpdump`` per interface and per direction (``-Q in``,
``-Q out``) in every namespace of the lab, each writing its own pcap. Per interface rather than
``-i any``: a cooked ``-i any`` capture (SLL2) carries neither the destination MAC nor, in a
classic pcap, the interface's name; per direction because a per-interface pcap does not say
which way a frame went. The interface names come from ``ip -j link``, not from netlab.

For every hop the trace reports (its ``hops`` and ``flood_copies``), the capture of that
namespace, interface and direction must hold a frame that tshark decodes to the same layer stack
and the same header fields: frame length, Ethernet src/dst/type, IP src/dst/ttl/id/proto/len/
flags, UDP and TCP ports (TCP flags, seq, ack), ICMP type/code/id/seq, the VXLAN VNI and flags,
and the inner headers of an encapsulated packet, layer by layer. tshark is told the labs' UDP
encapsulation ports as the lab files declare them (``-d``), as a user reading the pcap would.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netlab import model
from netlab.plan import Ruleset, cross_node_pair, cross_node_pair_or_reason
from tests.helpers import ROOT, ipj, pcap_count, sh, wait_until
from tests.kernel.test_capture_promisc import tshark  # noqa: F401  (the fixture: installs tshark if missing)

pytestmark = pytest.mark.kernel

NETLAB = [sys.executable, "-m", "netlab"]

#: Every lab file is traced (tests/conftest.py leaves out, by the ``lab`` parameter, those whose
#: kernel features this machine lacks: calico-ipip without ipip runs in the VM pass only). Here:
#: how small each lab is brought up while still showing its datapath (a lab not listed: as its file says).
ALL_LABS = sorted(f.stem for f in model.available())
LABS: dict[str, dict[str, int]] = {
    "baseline": {},
    "bridge": {"pods": 2},
    "calico": {"nodes": 2, "pods": 1},
    "calico-ipip": {"nodes": 2, "pods": 1},
    "calico-rr": {"nodes": 2, "pods": 1},
    "calico-vxlan": {"nodes": 2, "pods": 1},
    "docker-nat": {"pods": 1},
    "flannel-udp": {"pods": 1},
    "host-gw": {"pods": 1},
    "vxlan": {"pods": 1},
}

#: tshark's decode-as for the UDP encapsulations, from the lab files' ``options.port``
#: (flannel's VXLAN 8472 and its UDP backend's bare IP on 8285 are ports tshark does not know).
DECODE_AS: dict[str, list[str]] = {
    "vxlan": ["udp.port==8472,vxlan"],
    "flannel-udp": ["udp.port==8285,ip"],
    "calico-vxlan": ["udp.port==4789,vxlan"],
}

#: tshark's protocol name for each of the trace's layer names.
PROTO_OF = {"Ether": "eth", "IP": "ip", "UDP": "udp", "TCP": "tcp", "ICMP": "icmp", "VXLAN": "vxlan", "ARP": "arp"}
LAYER_OF = {v: k for k, v in PROTO_OF.items()}
TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80, "N": 0x100}


# ---- the probes: which trace each lab runs -----------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """One ``netlab trace`` invocation: source, destination and extra options."""

    src: str
    dst: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return " ".join([self.src, self.dst, *self.args])


def pod_pair_probe(lab) -> list[Probe]:
    """The plan's routable cross-node pod pair (flannel, Calico)."""
    pair = cross_node_pair(lab.plan)
    assert pair is not None, f"{lab.name}: the plan has no routable cross-node pod pair"
    return [Probe(pair.src.host, pair.dst.host)]


def published_port(lab, node_ns: str, container_ip: str) -> int:
    """The host port the plan's nat rules in ``node_ns`` DNAT to ``container_ip`` (docker run -p)."""
    for rs in lab.plan.of(Ruleset):
        if rs.ns != node_ns:
            continue
        for rule in rs.rules:
            words = rule.spec.split()
            if rule.table == "nat" and "DNAT" in words and f"{container_ip}:" in rule.spec and "--dport" in words:
                return int(words[words.index("--dport") + 1])
    raise AssertionError(f"{lab.name}: no DNAT rule to {container_ip} planned in {node_ns}")


def docker_nat_probe(lab) -> list[Probe]:
    """The overlapping pair's source executor to the other host's published port: TCP through
    MASQUERADE on one node and DNAT on the other (the pods cannot address each other)."""
    pair = cross_node_pair_or_reason(lab.plan, routable=False)
    assert not isinstance(pair, str), f"{lab.name}: {pair}"
    node = str(pair.dst.node)
    port = published_port(lab, lab.ns(node), pair.dst_ip)
    return [Probe(pair.src.host, node, ("--proto", "tcp", "--port", str(port)))]


def bridge_probes(lab) -> list[Probe]:
    """Container to container on one docker0 (bridged), and a container to the router (masqueraded)."""
    pods = [n.host for n in lab.plan.namespaces if n.role == "pod"]
    assert len(pods) >= 2, f"{lab.name}: fewer than two containers planned ({pods})"
    return [Probe(pods[0], pods[1]), Probe(pods[0], "router")]


def baseline_probe(lab) -> list[Probe]:
    """Node to node over the bare underlay."""
    nodes = [n.host for n in lab.plan.namespaces if n.role == "node"]
    assert len(nodes) >= 2, f"{lab.name}: fewer than two nodes planned ({nodes})"
    return [Probe(nodes[0], nodes[1])]


PROBES: dict[str, Callable[[object], list[Probe]]] = {
    "baseline": baseline_probe, "bridge": bridge_probes, "docker-nat": docker_nat_probe,
}


# ---- the independent captures ------------------------------------------------------------------

@dataclass
class Tap:
    """One tcpdump: namespace ``ns`` (host ``host``), interface ``iface``, one direction."""

    ns: str
    host: str
    iface: str
    direction: str  # the trace's words: "in" or "out"
    pcap: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.ns, self.iface, self.direction

    def start(self) -> None:
        # -p: leave every device's promiscuity to the lab (and to the trace's own sockets);
        # -Z root: the pytest tmp directory is not writable by the tcpdump user
        argv = ["ip", "netns", "exec", self.ns, "tcpdump", "-Z", "root", "-p", "-n", "--immediate-mode", "-U",
                "-i", self.iface, "-Q", self.direction, "-w", str(self.pcap)]
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)

    def listening(self) -> bool:
        """tcpdump says "listening on" once its socket is bound; an early exit is a failure."""
        text = self.log.read_text()
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"tcpdump on {self.host}:{self.iface} {self.direction} exited: {text.strip()}")
        return "listening on" in text

    def captured(self) -> int:
        try:
            return pcap_count(self.pcap.read_bytes())
        except FileNotFoundError:
            return 0

    def interrupt(self) -> None:
        """SIGINT (tcpdump then closes its file cleanly) to the process this test started."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def reap(self) -> None:
        """Wait for it to exit (SIGKILL to it if it does not within 10 s)."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def interfaces(ns: str) -> list[str]:
    """Every link in ``ns``, as iproute2 lists it."""
    # a device that is down carries nothing and tcpdump cannot open it (the fallback tunl0 a
    # kernel with the ipip module puts in every namespace, the router's included)
    return [link["ifname"] for link in ipj(ns, "link", "show") if "UP" in link.get("flags", [])]


def taps_for(lab, where: Path) -> list[Tap]:
    """A tap per interface and direction in every namespace of the lab."""
    taps = []
    for n in lab.plan.namespaces:
        for iface in interfaces(n.name):
            for d in ("in", "out"):
                stem = f"{n.host}.{iface}.{d}"
                taps.append(Tap(n.name, n.host, iface, d, where / f"{stem}.pcap", where / f"{stem}.log"))
    return taps


class Captures:
    """All taps of a lab: started and listening on entry, stopped (only these processes) on exit."""

    def __init__(self, lab, where: Path) -> None:
        self.taps = taps_for(lab, where)
        self.by_key = {t.key: t for t in self.taps}

    def __enter__(self) -> Captures:
        try:
            for t in self.taps:
                t.start()
            wait_until(lambda: all(t.listening() for t in self.taps), timeout=30, what="every tcpdump listening",
                       detail=lambda: [f"{t.host}:{t.iface} {t.direction}" for t in self.taps
                                       if "listening on" not in t.log.read_text()])
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Interrupt every tap first, then wait for each: they wind down side by side."""
        for t in self.taps:
            t.interrupt()
        for t in self.taps:
            t.reap()

    def drain(self, wanted: dict[tuple[str, str, str], int], timeout: float = 10.0) -> None:
        """Wait until each tap has written at least the frames the trace saw there: tcpdump
        stopped by SIGINT drops what it has not read from its ring yet. A tap that never gets
        there is not an error here; the comparison names the frame that is missing."""
        def short() -> list[str]:
            return [f"{k}: {self.by_key[k].captured()}/{n}" for k, n in wanted.items()
                    if k in self.by_key and self.by_key[k].captured() < n]
        try:
            wait_until(lambda: not short(), timeout=timeout, what="the traced frames in the captures", detail=short)
        except AssertionError:
            pass


# ---- tshark's decode ---------------------------------------------------------------------------

@dataclass
class Layer:
    """One protocol of tshark's dissection: its name and its fields' displayed values."""

    proto: str
    fields: dict[str, str] = field(default_factory=dict)
    quoted: bool = False


@dataclass
class Frame:
    """One frame as tshark decodes it: its length and its layers, outermost first."""

    number: int
    length: int
    layers: list[Layer]

    def stack(self) -> list[str]:
        """The layers the trace also names, in the trace's words (tshark's frame, data and
        ethertype pseudo-layers left out)."""
        return [("quoted " if ly.quoted else "") + LAYER_OF[ly.proto] for ly in self.layers if ly.proto in LAYER_OF]

    def layer(self, name: str, nth: int) -> Layer | None:
        """The ``nth`` layer called ``name`` (trace word) of the same quotedness, counted outermost first."""
        quoted = name.startswith("quoted ")
        proto = PROTO_OF.get(name.removeprefix("quoted "))
        if proto is None:
            return None  # a layer tshark has no name for here: the stack comparison reports it
        same = [ly for ly in self.layers if ly.proto == proto and ly.quoted == quoted]
        return same[nth] if nth < len(same) else None


def _fields_of(proto: ET.Element) -> dict[str, str]:
    """Every field below ``proto`` but not inside a protocol nested in it (first value of a name)."""
    out: dict[str, str] = {}

    def walk(e: ET.Element) -> None:
        for child in e:
            if child.tag == "field":
                name = child.get("name") or ""
                if name and name not in out and child.get("show") is not None:
                    out[name] = child.get("show") or ""
                walk(child)

    walk(proto)
    return out


def _layers_of(e: ET.Element, quoted: bool) -> Iterator[Layer]:
    """Protocols in document order; those inside an ICMP error are the quoted packet."""
    for child in e:
        if child.tag == "proto":
            name = child.get("name") or ""
            yield Layer(name, _fields_of(child), quoted)
            yield from _layers_of(child, quoted or name == "icmp")
        elif child.tag == "field":
            yield from _layers_of(child, quoted)


def tshark_frames(tshark_bin: str, pcap: Path, decode_as: list[str]) -> list[Frame]:
    """tshark's full dissection of ``pcap`` (PDML: every protocol in order, with its fields)."""
    argv = [tshark_bin, "-r", str(pcap), "-T", "pdml"]
    for d in decode_as:
        argv += ["-d", d]
    root = ET.fromstring(sh(*argv).stdout)
    frames = []
    for i, pkt in enumerate(root.iter("packet"), 1):
        layers = list(_layers_of(pkt, False))
        frame = next((ly for ly in layers if ly.proto == "frame"), Layer("frame"))
        frames.append(Frame(i, int(frame.fields.get("frame.len", "-1")), layers))
    return frames


def decode_all(taps: list[Tap], tshark_bin: str, decode_as: list[str]) -> dict[tuple[str, str, str], list[Frame]]:
    """tshark over every tap's pcap in one run: ``mergecap -I none`` merges them into one pcapng
    that keeps each input file's interface block apart, so a frame's ``frame.interface_id`` is
    the index of the tap it was captured by. One tshark instead of one per tap: each start loads
    every dissector, seconds under the VM pass's emulator."""
    if not taps:
        return {}
    merged = taps[0].pcap.parent / "merged.pcapng"
    sh("mergecap", "-I", "none", "-w", str(merged), *[str(t.pcap) for t in taps])
    out: dict[tuple[str, str, str], list[Frame]] = {t.key: [] for t in taps}
    for f in tshark_frames(tshark_bin, merged, decode_as):
        frame = next(ly for ly in f.layers if ly.proto == "frame")
        out[taps[int(frame.fields["frame.interface_id"])].key].append(f)
    return out


# ---- the comparison ----------------------------------------------------------------------------

def _int(show: str) -> int:
    return int(show, 0)


def _ip_flags(fields: dict[str, str]) -> str:
    return "+".join(f for f, key in (("DF", "ip.flags.df"), ("MF", "ip.flags.mf")) if fields.get(key) in ("1", "True"))


def _scapy_ip_flags(value: str) -> str:
    return "+".join(f for f in ("DF", "MF") if f in str(value).split("+"))


def _tcp_flags(value: str) -> int:
    return sum(TCP_FLAG_BITS[c] for c in str(value))


#: (trace layer, trace field) -> (tshark field, tshark value -> comparable, trace value -> comparable).
#: None as a converter: the value as is (MAC and IP addresses are written alike by both).
Conv = Callable[[str], object] | None
FIELDS: dict[str, dict[str, tuple[str, Conv, Conv]]] = {
    "Ether": {"src": ("eth.src", str.lower, str.lower), "dst": ("eth.dst", str.lower, str.lower),
              "type": ("eth.type", _int, int)},
    "IP": {"src": ("ip.src", None, None), "dst": ("ip.dst", None, None), "ttl": ("ip.ttl", _int, int),
           "proto": ("ip.proto", _int, int), "id": ("ip.id", _int, int), "len": ("ip.len", _int, int),
           "frag": ("ip.frag_offset", _int, lambda v: int(v) * 8)},  # tshark shows the offset in bytes
    "UDP": {"sport": ("udp.srcport", _int, int), "dport": ("udp.dstport", _int, int),
            "len": ("udp.length", _int, int)},
    "TCP": {"sport": ("tcp.srcport", _int, int), "dport": ("tcp.dstport", _int, int),
            "seq": ("tcp.seq_raw", _int, int), "ack": ("tcp.ack_raw", _int, int),
            "flags": ("tcp.flags", _int, _tcp_flags)},
    "ICMP": {"type": ("icmp.type", _int, int), "code": ("icmp.code", _int, int), "id": ("icmp.ident", _int, int),
             "seq": ("icmp.seq", _int, int), "mtu": ("icmp.mtu", _int, int)},
    # Wireshark's VXLAN flags are the 16-bit field (I flag 0x0800); scapy's are its first byte
    "VXLAN": {"vni": ("vxlan.vni", _int, int), "flags": ("vxlan.flags", lambda s: _int(s) >> 8, int)},
}


@dataclass
class Tally:
    """What a lab's comparison covered, for the report."""

    hops: int = 0
    fields: int = 0
    problems: list[str] = field(default_factory=list)


def compare(hop: dict, frame: Frame) -> tuple[list[tuple[str, object, object]], int]:
    """(field, trace value, tshark value) for every disagreement between a hop and a frame, and
    how many fields were compared."""
    bad: list[tuple[str, object, object]] = []
    n = 2
    if hop["length"] != frame.length:
        bad.append(("frame length", hop["length"], frame.length))
    names = [("quoted " if ly.get("quoted") else "") + ly["name"] for ly in hop["layers"]]
    if names != frame.stack():
        bad.append(("layer stack", "/".join(names), "/".join(frame.stack())))
    seen: dict[str, int] = {}
    for ly, name in zip(hop["layers"], names, strict=True):
        nth = seen.get(name, 0)
        seen[name] = nth + 1
        theirs = frame.layer(name, nth)
        for key, value in ly["fields"].items():
            where = f"{name}#{nth}.{key}"
            if name.removeprefix("quoted ") == "IP" and key == "flags":
                n += 1
                if theirs is None or _scapy_ip_flags(value) != _ip_flags(theirs.fields):
                    bad.append((where, value, None if theirs is None else _ip_flags(theirs.fields)))
                continue
            spec = FIELDS.get(name.removeprefix("quoted "), {}).get(key)
            if spec is None:
                continue
            tfield, tconv, oconv = spec
            n += 1
            shown = None if theirs is None else theirs.fields.get(tfield)
            if shown is None:
                bad.append((where, value, f"no {tfield}"))
                continue
            mine = value if oconv is None else oconv(value)
            got = shown if tconv is None else tconv(shown)
            if mine != got:
                bad.append((where, value, got if str(got) == shown else f"{got} (shown {shown!r})"))
    return bad, n


def hop_name(lab: str, probe: Probe, hop: dict, kind: str) -> str:
    return (f"lab {lab}, trace {probe}, {kind} {hop['n']} ({hop['leg']}) "
            f"{hop['host']}:{hop['iface']} {hop['direction']}")


def match_hop(lab: str, probe: Probe, hop: dict, kind: str, frames: list[Frame], used: set[int],
              tally: Tally) -> None:
    """Find the hop's frame among its capture's: the first unused one that agrees on every
    field. None agreeing: report the closest, field by field."""
    label = hop_name(lab, probe, hop, kind)
    tally.hops += 1
    if not frames:
        tally.problems.append(f"{label}: no frame in tcpdump's capture of that interface and direction")
        return
    best: tuple[list, int, Frame] | None = None
    for f in frames:
        if f.number in used:
            continue
        bad, n = compare(hop, f)
        if not bad:
            used.add(f.number)
            tally.fields += n
            return
        if best is None or len(bad) < len(best[0]):
            best = (bad, n, f)
    if best is None:
        tally.problems.append(f"{label}: every frame of its capture ({len(frames)}) already matched another hop")
        return
    bad, n, f = best
    tally.fields += n
    for what, mine, theirs in bad:
        tally.problems.append(f"{label}: {what}: trace {mine!r}, tshark {theirs!r} (closest frame #{f.number} "
                              f"of {len(frames)})")


def run_trace(lab, probe: Probe) -> dict:
    """``netlab trace <lab> <src> <dst> --json`` as a user runs it; its JSON (an incomplete
    trace exits 1 but still prints it)."""
    cp = sh(*NETLAB, "trace", lab.name, probe.src, probe.dst, "--json", *probe.args, cwd=ROOT, check=False)
    try:
        return json.loads(cp.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"trace {probe} printed no JSON (exit {cp.returncode}): {cp.stderr.strip()}") from None


def sightings(data: dict) -> list[tuple[str, dict]]:
    """Every hop the trace reports: the path, then the bridges' flood copies."""
    return [("hop", h) for h in data["hops"]] + [("flood copy", h) for h in data.get("flood_copies", [])]


def trace_and_compare(lab, labname: str, probe: Probe, where: Path, tshark_bin: str, tally: Tally) -> dict:
    """Capture everywhere, trace once, and compare each of the trace's hops with tshark."""
    where.mkdir()
    with Captures(lab, where) as caps:
        data = run_trace(lab, probe)
        wanted: dict[tuple[str, str, str], int] = {}
        for _, h in sightings(data):
            key = (h["ns"], h["iface"], h["direction"])
            wanted[key] = wanted.get(key, 0) + 1
        caps.drain(wanted)
    decoded = decode_all([caps.by_key[k] for k in wanted if k in caps.by_key], tshark_bin,
                         DECODE_AS.get(labname, []))
    used: dict[tuple[str, str, str], set[int]] = {}
    for kind, h in sightings(data):
        key = (h["ns"], h["iface"], h["direction"])
        if key not in decoded:
            tally.hops += 1
            tally.problems.append(f"{hop_name(labname, probe, h, kind)}: no such interface in the namespace "
                                  f"(ip link lists {interfaces(h['ns'])})")
            continue
        match_hop(labname, probe, h, kind, decoded[key], used.setdefault(key, set()), tally)
    return data


@pytest.mark.parametrize("lab", ALL_LABS)  # "lab": tests/conftest.py marks the features each lab needs
def test_trace_hops_agree_with_tshark(lab_factory, tmp_path, tshark, lab):  # noqa: F811
    """Every hop of every trace has a frame in tcpdump's capture of that interface and direction,
    and tshark decodes it to the same stack and fields."""
    t0 = time.monotonic()
    handle = lab_factory(lab, **LABS.get(lab, {}))
    probes = PROBES.get(lab, pod_pair_probe)(handle)
    tally = Tally()
    incomplete = []
    for i, probe in enumerate(probes):
        data = trace_and_compare(handle, lab, probe, tmp_path / f"trace{i}", tshark, tally)
        if not data["complete"]:
            incomplete.append(f"trace {probe} did not complete: {json.dumps(data.get('stop'))[:600]}")
        if not data["hops"]:
            incomplete.append(f"trace {probe} saw no hop")
    print(f"\n{lab}: {len(probes)} trace(s), {tally.hops} hops, {tally.fields} fields compared with tshark "
          f"in {time.monotonic() - t0:.1f}s")
    assert not tally.problems, f"{lab}: trace and tshark disagree:\n" + "\n".join(tally.problems)
    assert not incomplete, "\n".join(incomplete)
