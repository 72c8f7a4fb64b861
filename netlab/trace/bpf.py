"""Classic BPF for packet sockets: compile tcpdump expressions, stitch programs, attach them.

Why in the kernel: scapy dissects a few thousand packets a second here, while a lab's underlay
carries ARP, BGP keepalives and whatever else runs in it. A socket filter runs before the packet is
queued to the socket, so the trace reads (and dissects) only the probe's packets.

One socket per namespace sees every interface in it, and those interfaces do not share a link
type: a veth, bridge or VXLAN device hands the socket an Ethernet frame, a TUN device (flannel0,
``IFF_TUN|IFF_NO_PI``, ARPHRD_NONE) or an IPIP device a bare IP packet. A tcpdump expression
compiles to different code for each link type, so :func:`by_link_type` builds one program that
first loads the device's hardware type from the kernel (the ``SKF_AD_HATYPE`` ancillary load) and
then runs the Ethernet or the raw-IP version. :func:`only_ifindexes` prepends the same kind of
test on ``SKF_AD_IFINDEX`` so that one unbound socket can capture a chosen set of interfaces.

Programs are lists of ``(code, jt, jf, k)`` tuples, exactly the kernel's ``struct sock_filter``;
the stitching functions are pure, and only :func:`attach` touches a socket.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from functools import lru_cache

from ..errors import NetlabError

Insn = tuple[int, int, int, int]
Program = list[Insn]

# linux/filter.h
BPF_LD, BPF_W, BPF_ABS = 0x00, 0x00, 0x20
BPF_JMP, BPF_JA, BPF_JEQ, BPF_K = 0x05, 0x00, 0x10, 0x00
BPF_RET = 0x06
SKF_AD_OFF = -0x1000
SKF_AD_PKTTYPE = 4
SKF_AD_IFINDEX = 8
SKF_AD_HATYPE = 28
SO_ATTACH_FILTER = 26
BPF_MAXINSNS = 4096

# if_arp.h hardware types whose packet-socket data starts with a 14-byte Ethernet header
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ETHERNET_HATYPES = (ARPHRD_ETHER, ARPHRD_LOOPBACK)

# pcap link types (also what libpcap's pcap_open_dead takes, as DLTs)
DLT_EN10MB = 1
DLT_RAW = 12
#: Snap length: big enough for a 64 KB GSO super-frame plus its headers.
SNAPLEN = 262144


# BPF_ALU operations on the 32-bit accumulator, by the opcode's high nibble (BPF_ADD … BPF_XOR);
# division and modulo by zero yield 0, as the kernel's classic-BPF interpreter does.
_ALU = {
    0x00: lambda a, s: a + s, 0x10: lambda a, s: a - s, 0x20: lambda a, s: a * s,
    0x30: lambda a, s: a // s if s else 0, 0x40: lambda a, s: a | s, 0x50: lambda a, s: a & s,
    0x60: lambda a, s: a << s, 0x70: lambda a, s: a >> s, 0x80: lambda a, s: -a,
    0x90: lambda a, s: a % s if s else 0, 0xA0: lambda a, s: a ^ s,
}

def _ancillary(off: int) -> Insn:
    return (BPF_LD | BPF_W | BPF_ABS, 0, 0, (SKF_AD_OFF + off) & 0xFFFFFFFF)


def accept_all() -> Program:
    return [(BPF_RET | BPF_K, 0, 0, SNAPLEN)]


@lru_cache(maxsize=64)
def _compile_cached(expr: str, dlt: int) -> tuple[Insn, ...]:
    try:
        from scapy.arch.common import compile_filter, free_filter
        from scapy.error import Scapy_Exception
    except ImportError as e:  # pragma: no cover - scapy is a dependency
        raise NetlabError(f"cannot compile BPF: {e}", "install libpcap (apt-get install libpcap0.8)") from None
    try:
        prog = compile_filter(expr, linktype=dlt)
    except (Scapy_Exception, ImportError, OSError) as e:
        raise NetlabError(f"bad capture filter {expr!r}: {e}", "use tcpdump filter syntax, e.g. 'icmp or udp port 8472'") from None
    try:
        insns = tuple((prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k & 0xFFFFFFFF)
                      for i in range(prog.bf_len))
    finally:
        free_filter(prog)
    # libpcap returns the snap length it was given (scapy passes 65535): raise it so a GSO
    # super-frame is captured whole rather than cut at 64 KB.
    return tuple((c, jt, jf, SNAPLEN) if c == BPF_RET | BPF_K and k else (c, jt, jf, k) for c, jt, jf, k in insns)


def compile_expr(expr: str, dlt: int) -> Program:
    """A tcpdump expression compiled by libpcap for link type ``dlt`` (DLT_EN10MB or DLT_RAW)."""
    if not expr.strip():
        return accept_all()
    return list(_compile_cached(expr, dlt))


def by_link_type(ether: Program, raw: Program) -> Program:
    """One program that runs ``ether`` on Ethernet-framed devices and ``raw`` on the others.

    Layout (relative jumps count from the next instruction)::

        0  ld  hatype
        1  jeq #ETHER     jt 2 (-> 4)  jf 0
        2  jeq #LOOPBACK  jt 1 (-> 4)  jf 0
        3  ja  len(ether)              (-> raw)
        4  <ether program>             every path ends in a ret
           <raw program>
    """
    return [
        _ancillary(SKF_AD_HATYPE),
        (BPF_JMP | BPF_JEQ | BPF_K, 2, 0, ARPHRD_ETHER),
        (BPF_JMP | BPF_JEQ | BPF_K, 1, 0, ARPHRD_LOOPBACK),
        (BPF_JMP | BPF_JA, 0, 0, len(ether)),
        *ether,
        *raw,
    ]


def only_ifindexes(ifindexes: list[int], prog: Program) -> Program:
    """Drop packets of any interface not in ``ifindexes``, then run ``prog``."""
    if not ifindexes:
        return prog
    if len(ifindexes) > 250:
        raise NetlabError(f"{len(ifindexes)} interfaces in one namespace is more than one filter can list",
                          "capture fewer interfaces at once")
    n = len(ifindexes)
    out: Program = [_ancillary(SKF_AD_IFINDEX)]
    for i, idx in enumerate(ifindexes):
        out.append((BPF_JMP | BPF_JEQ | BPF_K, n - i, 0, idx))  # hit: skip the rest and the "ret 0"
    out.append((BPF_RET | BPF_K, 0, 0, 0))
    out.extend(prog)
    return out


def for_expr(expr: str) -> Program:
    """``expr`` for a socket that may see both Ethernet and raw-IP devices."""
    return by_link_type(compile_expr(expr, DLT_EN10MB), compile_expr(expr, DLT_RAW))


def attach(sock: socket.socket, prog: Program) -> None:
    """``setsockopt(SO_ATTACH_FILTER)``: the kernel copies the program, so the buffer may go."""
    if len(prog) > BPF_MAXINSNS:
        raise NetlabError(f"capture filter compiles to {len(prog)} instructions (kernel limit {BPF_MAXINSNS})",
                          "use a simpler --filter")
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in prog))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def run(prog: Program, data: bytes, hatype: int = ARPHRD_ETHER, ifindex: int = 0, pkttype: int = 0) -> int:
    """A tiny classic-BPF interpreter, for unit tests of stitched programs without a kernel.

    Supports what libpcap emits for ordinary expressions (loads, ALU, jumps, ret, scratch memory).
    Returns the accepted length (0 = dropped)."""
    A = X = 0
    mem = [0] * 16
    pc = 0
    anc = {SKF_AD_HATYPE: hatype, SKF_AD_IFINDEX: ifindex, SKF_AD_PKTTYPE: pkttype}

    def load(off: int, size: int) -> int | None:
        if off & 0x80000000:
            return anc.get((off - (SKF_AD_OFF & 0xFFFFFFFF)))
        if off + size > len(data):
            return None
        return int.from_bytes(data[off:off + size], "big")

    while pc < len(prog):
        code, jt, jf, k = prog[pc]
        pc += 1
        cls = code & 0x07
        if cls in (0x00, 0x01):  # LD / LDX
            size = {0x00: 4, 0x08: 2, 0x10: 1}[code & 0x18]
            mode = code & 0xE0
            v: int | None  # None: the load is out of the packet, which makes the kernel return 0
            if mode == 0x00:  # IMM
                v = k
            elif mode == 0x20:  # ABS
                v = load(k, size)
            elif mode == 0x40:  # IND
                v = load((X + k) & 0xFFFFFFFF, size)
            elif mode == 0x60:  # MEM
                v = mem[k]
            elif mode == 0x80:  # LEN
                v = len(data)
            elif mode == 0xA0:  # MSH
                b = load(k, 1)
                v = None if b is None else (b & 0x0F) * 4
            else:
                raise ValueError(f"unsupported load mode {mode:#x}")
            if v is None:
                return 0
            if cls == 0x00:
                A = v
            else:
                X = v
        elif cls == 0x02:
            mem[k] = A
        elif cls == 0x03:
            mem[k] = X
        elif cls == 0x04:  # ALU
            src = X if code & 0x08 else k
            op = code & 0xF0
            A = _ALU[op](A, src) & 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            op = code & 0xF0
            if op == BPF_JA:
                pc += k
                continue
            src = X if code & 0x08 else k
            cond = {0x10: A == src, 0x20: A > src, 0x30: A >= src, 0x40: bool(A & src)}[op]
            pc += jt if cond else jf
        elif cls == 0x06:  # RET
            return A if code & 0x18 == 0x10 else k
        elif cls == 0x07:  # MISC: TAX / TXA
            if code & 0xF8 == 0x00:
                X = A
            else:
                A = X
    return 0
