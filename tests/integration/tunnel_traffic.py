#!/usr/bin/python3
"""Traffic and capture analysis for the tunnel integration test
(test_tunnels.sh) and the lab. Run inside the namespace packets should leave
from (nsenter --net=...). Commands needing scapy import it lazily (Debian's
python3-scapy: run with /usr/bin/python3).

  flows DST DPORT NFLOWS PKTS SPORT0
        NFLOWS UDP flows from source ports SPORT0.. to DST:DPORT, PKTS
        datagrams each (plain sockets: the kernel fills in checksums).
  ecmp SPORT0 NFLOWS DPORT PCAP...
        reads one GRE capture per tunnel (in tunnel order) and prints JSON:
        packets per tunnel, flows seen per tunnel, flows seen on more than
        one tunnel ("split"), flows never seen ("missing").
  spoof CASE SRC DST KEY COUNT INNER_DST
        crafted GRE (scapy) from SRC to DST with inner UDP to INNER_DST:9.
        KEY "none" = keyless tunnel. CASE: valid, wrong_key, no_key, add_key.
  df DST DPORT SIZE
        one UDP datagram of SIZE bytes of IPv4 with DF to DST (scapy);
        prints JSON of the ICMP error it got back ({} when none):
        {"src", "type", "code", "mtu"}.
  nodf DST DPORT SIZE
        one UDP datagram of SIZE bytes of IPv4 without DF (the kernel
        fragments it where needed).
  udp_sink ADDR PORT OUTFILE
        receives UDP datagrams; appends "size" lines to OUTFILE.
  syn_mss PCAP
        prints JSON: the MSS option of every TCP SYN (without ACK) in PCAP.
"""
import json
import socket
import sys
import time


def cmd_flows(dst, dport, nflows, pkts, sport0):
    dport, nflows, pkts, sport0 = int(dport), int(nflows), int(pkts), int(sport0)
    socks = []
    for i in range(nflows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", sport0 + i))
        socks.append(s)
    for p in range(pkts):
        for i, s in enumerate(socks):
            s.sendto(b"mt-ecmp flow %d packet %d" % (i, p), (dst, dport))
            if i % 50 == 49:
                time.sleep(0.002)  # do not outrun the captures
    for s in socks:
        s.close()
    return 0


def gre_inner(pcap):
    """The inner IPv4 packets of the GRE packets in pcap."""
    from scapy.all import GRE, IP, rdpcap
    out = []
    for p in rdpcap(pcap):
        if IP in p and p[IP].proto == 47 and GRE in p and IP in p[GRE].payload:
            out.append(p[GRE][IP])
    return out


def cmd_ecmp(sport0, nflows, dport, *pcaps):
    from scapy.all import UDP
    sport0, nflows, dport = int(sport0), int(nflows), int(dport)
    seen = {}  # flow (source port) -> set of tunnel indexes
    packets = [0] * len(pcaps)
    for t, pcap in enumerate(pcaps):
        for ip in gre_inner(pcap):
            if UDP not in ip or ip[UDP].dport != dport:
                continue
            sp = ip[UDP].sport
            if not sport0 <= sp < sport0 + nflows:
                continue
            packets[t] += 1
            seen.setdefault(sp, set()).add(t)
    flows = [sum(1 for s in seen.values() if s == {t}) for t in range(len(pcaps))]
    res = {
        "packets": packets,
        "flows": flows,
        "split": sum(1 for s in seen.values() if len(s) > 1),
        "missing": nflows - len(seen),
    }
    print(json.dumps(res, sort_keys=True))
    return 0


def cmd_spoof(case, src, dst, key, count, inner_dst):
    from scapy.all import GRE, IP, UDP, Raw, send
    count = int(count)
    key = None if key == "none" else int(key, 0)
    inner = IP(src="203.0.113.10", dst=inner_dst) / UDP(sport=4242, dport=9) \
        / Raw(b"mt-gre-spoof " + case.encode())
    if case == "valid":
        k = key
    elif case == "wrong_key":
        k = (key or 0) + 1
    elif case == "no_key":
        k = None
    elif case == "add_key":
        k = 77
    else:
        print("unknown case " + case, file=sys.stderr)
        return 2
    gre = GRE(proto=0x0800) if k is None else \
        GRE(key_present=1, key=k, proto=0x0800)
    send(IP(src=src, dst=dst, flags="DF") / gre / inner, count=count,
         verbose=False)
    return 0


def cmd_df(dst, dport, size):
    from scapy.all import ICMP, IP, UDP, Raw, sr1
    size = int(size)
    pkt = IP(dst=dst, flags="DF") / UDP(sport=33333, dport=int(dport)) \
        / Raw(b"d" * (size - 28))
    ans = sr1(pkt, timeout=3, verbose=False)
    res = {}
    if ans is not None and ICMP in ans:
        res = {"src": ans[IP].src, "type": ans[ICMP].type,
               "code": ans[ICMP].code, "mtu": ans[ICMP].nexthopmtu}
    print(json.dumps(res, sort_keys=True))
    return 0


def cmd_nodf(dst, dport, size):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # IP_MTU_DISCOVER = IP_PMTUDISC_DONT: DF clear, fragment as needed
    s.setsockopt(socket.IPPROTO_IP, 10, 0)
    s.sendto(b"n" * (int(size) - 28), (dst, int(dport)))
    s.close()
    return 0


def cmd_udp_sink(addr, port, outfile):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    while True:
        data, _ = s.recvfrom(65535)
        with open(outfile, "a") as f:
            f.write("%d\n" % len(data))


def cmd_syn_mss(pcap):
    from scapy.all import TCP, rdpcap
    out = []
    for p in rdpcap(pcap):
        if TCP in p and p[TCP].flags & 0x02 and not p[TCP].flags & 0x10:
            mss = [v for k, v in p[TCP].options if k == "MSS"]
            out.append(mss[0] if mss else None)
    print(json.dumps(out))
    return 0


def main():
    cmds = {"flows": cmd_flows, "ecmp": cmd_ecmp, "spoof": cmd_spoof,
            "df": cmd_df, "nodf": cmd_nodf, "udp_sink": cmd_udp_sink,
            "syn_mss": cmd_syn_mss}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
