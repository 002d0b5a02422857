#!/usr/bin/python3
"""Traffic for the firewall integration test (test_firewall.sh). Run inside
the namespace the packets leave from or arrive in (nsenter --net=...).

  serve OUTDIR TCP_PORTS UDP_PORTS
        listens on 0.0.0.0 on every TCP port of TCP_PORTS (comma list:
        accepts and closes) and UDP port of UDP_PORTS; the number of
        datagrams received on UDP port P is kept in OUTDIR/udp_P
        (rewritten every 50 ms).
  tcp SRC DST PORT TIMEOUT_S
        one TCP connect from SRC (an address of this namespace) to
        DST:PORT; prints "open" (exit 0) or "blocked" (exit 1).
  udp SRC DST PORT COUNT PPS SIZE
        COUNT datagrams of SIZE bytes of IP packet from SRC to DST:PORT,
        paced at PPS per second; prints the seconds it took.
"""
import os
import selectors
import socket
import sys
import time


def cmd_serve(outdir, tcp_ports, udp_ports):
    sel = selectors.DefaultSelector()
    counts = {}
    for p in [int(x) for x in tcp_ports.split(",") if x]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", p))
        s.listen(64)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("tcp", p))
    for p in [int(x) for x in udp_ports.split(",") if x]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("0.0.0.0", p))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("udp", p))
        counts[p] = 0
    dirty, last = True, 0.0
    while True:
        for key, _ in sel.select(timeout=0.05):
            kind, port = key.data
            if kind == "tcp":
                try:
                    c, _ = key.fileobj.accept()
                    c.close()
                except BlockingIOError:
                    pass
                continue
            while True:
                try:
                    key.fileobj.recv(65536)
                except BlockingIOError:
                    break
                counts[port] += 1
                dirty = True
        now = time.monotonic()
        if dirty and now - last >= 0.05:
            for p, n in counts.items():
                tmp = os.path.join(outdir, ".udp_%d" % p)
                with open(tmp, "w") as f:
                    f.write("%d\n" % n)
                os.rename(tmp, os.path.join(outdir, "udp_%d" % p))
            dirty, last = False, now


def cmd_tcp(src, dst, port, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(float(timeout))
    try:
        s.connect((dst, int(port)))
        print("open")
        return 0
    except OSError:
        print("blocked")
        return 1
    finally:
        s.close()


def cmd_udp(src, dst, port, count, pps, size):
    count, pps, size = int(count), float(pps), int(size)
    payload = b"m" * max(0, size - 28)  # IPv4 + UDP headers
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    t0 = time.monotonic()
    for i in range(count):
        due = t0 + i / pps
        while True:
            d = due - time.monotonic()
            if d <= 0:
                break
            time.sleep(min(d, 0.01))
        s.sendto(payload, (dst, int(port)))
    print("%.3f" % (time.monotonic() - t0))
    return 0


def main():
    cmds = {"serve": cmd_serve, "tcp": cmd_tcp, "udp": cmd_udp}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[sys.argv[1]](*sys.argv[2:]) or 0


if __name__ == "__main__":
    sys.exit(main())
