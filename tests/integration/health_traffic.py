#!/usr/bin/python3
"""Traffic for the health-check test (test_health.sh) and the failover
benchmark (tests/bench/health). Run inside the namespace the traffic starts
from (nsenter --net=...).

  upload_server PORT OUTFILE
        accepts TCP connections; for each, counts the bytes until EOF and
        their SHA-256, then writes "BYTES SHA" to OUTFILE and answers the
        same line to the client.
  upload DST PORT BYTES RATE
        connects to DST:PORT and sends BYTES pseudo-random bytes at about
        RATE bytes/s, then half-closes and waits for the server's line;
        prints JSON {"sent", "sha", "server", "seconds"}. Exits 1 when the
        connection fails or the server's count differs.
  stream DST PORT PPS SECONDS
        UDP datagrams to DST:PORT at PPS for SECONDS, each carrying
        (seq, CLOCK_REALTIME ns of sending).
  stream_sink PORT OUTFILE
        receives those datagrams on every interface and appends one line
        per datagram to OUTFILE: "RECV_NS SEND_NS SEQ IFINDEX" (IP_PKTINFO:
        the interface says which origin router delivered it).
"""
import hashlib
import json
import os
import socket
import struct
import sys
import time


def cmd_upload_server(port, outfile):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", int(port)))
    ls.listen(8)
    while True:
        c, _ = ls.accept()
        h, n = hashlib.sha256(), 0
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            h.update(b)
            n += len(b)
        line = "%d %s\n" % (n, h.hexdigest())
        with open(outfile, "a") as f:
            f.write(line)
        c.sendall(line.encode())
        c.close()


def cmd_upload(dst, port, nbytes, rate):
    nbytes, rate = int(nbytes), float(rate)
    chunk = 16384
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    s = socket.create_connection((dst, int(port)), timeout=30)
    t0 = time.monotonic()
    sent = 0
    while sent < nbytes:
        n = min(chunk, nbytes - sent)
        b = block[sent % len(block):][:n]
        if len(b) < n:
            b = block[:n]
        s.sendall(b)
        h.update(b)
        sent += n
        ahead = sent / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    s.shutdown(socket.SHUT_WR)
    answer = b""
    while not answer.endswith(b"\n"):
        b = s.recv(256)
        if not b:
            break
        answer += b
    out = {"sent": sent, "sha": h.hexdigest(),
           "server": answer.decode().strip(),
           "seconds": round(time.monotonic() - t0, 3)}
    print(json.dumps(out))
    ok = out["server"] == "%d %s" % (sent, out["sha"])
    sys.exit(0 if ok else 1)


def cmd_stream(dst, port, pps, seconds):
    pps, seconds = float(pps), float(seconds)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.monotonic()
    seq = 0
    while True:
        now = time.monotonic() - t0
        if now >= seconds:
            break
        s.sendto(struct.pack("!QQ", seq, time.time_ns()), (dst, int(port)))
        seq += 1
        ahead = seq / pps - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)


def cmd_stream_sink(port, outfile):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # linux/in.h
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.bind(("0.0.0.0", int(port)))
    with open(outfile, "a", buffering=1) as f:
        while True:
            data, anc, _, _ = s.recvmsg(64, socket.CMSG_SPACE(12))
            now = time.time_ns()
            ifindex = 0
            for level, typ, val in anc:
                if level == socket.IPPROTO_IP and typ == IP_PKTINFO:
                    ifindex = struct.unpack("I", val[:4])[0]
            if len(data) >= 16:
                seq, sent = struct.unpack("!QQ", data[:16])
                f.write("%d %d %d %d\n" % (now, sent, seq, ifindex))


def main():
    cmds = {"upload_server": cmd_upload_server, "upload": cmd_upload,
            "stream": cmd_stream, "stream_sink": cmd_stream_sink}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.stderr.write(__doc__)
        sys.exit(2)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
