#!/usr/bin/python3
"""Independent check of captured GRE (scapy, Debian's python3-scapy).

usage: gre_wire_check.py PCAP KEY  (KEY "none" for a keyless tunnel)

Every packet in PCAP must be IPv4 protocol 47 carrying standard GRE: version
0, no checksum/routing/sequence/strict-route/recursion bits, protocol 0x0800,
the key as configured (present iff configured), a valid outer IPv4 checksum,
DF set, and an inner IPv4 packet with a valid header checksum and a valid
TCP/UDP/ICMP checksum. Prints one JSON line of counts; exits 1 on any bad
packet (listing the first few) or when the capture is empty.
"""
import json
import sys

from scapy.all import GRE, ICMP, IP, TCP, UDP, rdpcap  # noqa: E402
from scapy.utils import checksum  # noqa: E402
from scapy.layers.inet import in4_chksum  # noqa: E402


def l4_ok(inner):
    raw = bytes(inner)
    ihl = inner.ihl * 4
    seg = raw[ihl:inner.len]
    if inner.proto == 6:
        return in4_chksum(6, inner, seg) == 0, "tcp"
    if inner.proto == 17:
        if inner[UDP].chksum == 0:
            return True, "udp"  # no checksum: allowed for UDP over IPv4
        return in4_chksum(17, inner, seg) == 0, "udp"
    if inner.proto == 1:
        return checksum(seg) == 0, "icmp"
    return True, "other"


def main():
    path, key = sys.argv[1], sys.argv[2]
    want_key = None if key == "none" else int(key, 0)
    counts = {"packets": 0, "tcp": 0, "udp": 0, "icmp": 0, "other": 0,
              "bad": 0}
    by_dir = {}
    bad = []
    for n, p in enumerate(rdpcap(path)):
        counts["packets"] += 1
        why = []
        if IP not in p or p[IP].proto != 47:
            why.append("not IPv4 GRE")
        else:
            o = p[IP]
            if checksum(bytes(o)[:o.ihl * 4]) != 0:
                why.append("outer IPv4 checksum")
            if not o.flags.DF:
                why.append("outer DF clear")
            if o.frag or o.flags.MF:
                why.append("outer fragment")
            g = o[GRE]
            if g.version != 0:
                why.append("GRE version %d" % g.version)
            if g.chksum_present or g.routing_present or g.seqnum_present \
                    or g.strict_route_source or g.recursion_control \
                    or g.flags:
                why.append("GRE flags")
            if g.proto != 0x0800:
                why.append("GRE protocol 0x%04x" % g.proto)
            if want_key is None and g.key_present:
                why.append("unexpected key")
            if want_key is not None and (not g.key_present
                                         or g.key != want_key):
                why.append("key %r" % (g.key if g.key_present else None))
            d = "%s>%s" % (o.src, o.dst)
            by_dir[d] = by_dir.get(d, 0) + 1
            if IP not in g.payload:
                why.append("inner not IPv4")
            else:
                inner = g[IP]
                if checksum(bytes(inner)[:inner.ihl * 4]) != 0:
                    why.append("inner IPv4 checksum")
                ok, kind = l4_ok(inner)
                counts[kind] += 1
                if not ok:
                    why.append("inner %s checksum" % kind)
        if why:
            counts["bad"] += 1
            if len(bad) < 5:
                bad.append("packet %d: %s" % (n + 1, ", ".join(why)))
    counts["directions"] = by_dir
    print(json.dumps(counts, sort_keys=True))
    for b in bad:
        print("BAD " + b, file=sys.stderr)
    return 1 if counts["bad"] or not counts["packets"] else 0


if __name__ == "__main__":
    sys.exit(main())
