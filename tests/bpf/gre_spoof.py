#!/usr/bin/python3
"""Sends crafted GRE packets (scapy) for the wire test's anti-spoofing phase.

usage: gre_spoof.py CASE DST SRC KEY COUNT INNER_DST

CASE is one of: valid, spoof_src, wrong_key, no_key, seq, bad_csum,
ipv6_proto, version1. KEY is the tunnel's configured key. Each packet
carries an inner ICMP echo request to INNER_DST. Run inside the namespace
the packets should leave from (raw IPv4 socket).
"""
import sys

from scapy.all import GRE, ICMP, IP, IPv6, Raw, send  # noqa: E402


def main():
    case, dst, src, key, count, inner_dst = sys.argv[1:7]
    key, count = int(key, 0), int(count)
    inner = IP(src="198.51.100.10", dst=inner_dst) / ICMP(id=77, seq=1) \
        / Raw(b"mt-gre-spoof")
    gre = GRE(key_present=1, key=key, proto=0x0800)
    if case == "spoof_src":
        src = "203.0.113.99"
    elif case == "wrong_key":
        gre.key = key + 1
    elif case == "no_key":
        gre = GRE(proto=0x0800)
    elif case == "seq":
        gre.seqnum_present = 1
        gre.seqence_number = 1
    elif case == "bad_csum":
        gre.chksum_present = 1
        gre.chksum = 0x1234
    elif case == "ipv6_proto":
        gre.proto = 0x86DD
        inner = IPv6(dst="2001:db8::1") / Raw(b"x" * 16)
    elif case == "version1":
        gre.version = 1
    elif case != "valid":
        print("unknown case " + case, file=sys.stderr)
        return 2
    pkt = IP(src=src, dst=dst, flags="DF") / gre / inner
    send(pkt, count=count, verbose=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
