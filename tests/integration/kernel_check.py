#!/usr/bin/env python3
"""Independent check of what mt built in the kernel, read with `ip -json`
and `nft -j` (never through mt itself).

usage: kernel_check.py INSTANCE METAL_NETNS CUSTOMERS_JSON

CUSTOMERS_JSON is a JSON list of customers as in the config model (id, name,
prefixes, tunnelEndpoints). Checks that each customer has exactly its
namespace, veth pair, addresses, routes, rules, marking and sysctls, and that
nothing else carrying the instance's ownership marks exists (nothing leaked).
Prints one line per problem; exit status 0 when there is none.
"""
import ipaddress
import json
import subprocess
import sys

GRE_TABLE, CUST_TABLE = 2000, 2001
RULE_PRIO, RTPROT = 1000, 77
FWMARK, FWMASK = 0x4D540000, 0xFFFF0000
POOL = ipaddress.ip_network("169.254.0.0/16")

problems = []


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def ipj(ns, *args):
    out = run("ip", "-n", ns, "-json", *args)
    return json.loads(out) if out.strip() else []


def problem(msg):
    problems.append(msg)


def link_addrs(cid):
    base = int(POOL.network_address)
    return (str(ipaddress.ip_address(base + 2 * cid)),
            str(ipaddress.ip_address(base + 2 * cid + 1)))


def sysctl(ns, key):
    return run("ip", "netns", "exec", ns, "cat", "/proc/sys/" + key).strip()


def norm(dst):
    return "0.0.0.0/0" if dst == "default" else (dst if "/" in dst else dst + "/32")


def main():
    inst, metal, cfile = sys.argv[1:4]
    prefix = "mt%s-" % inst
    customers = json.load(open(cfile))
    want_ns = {prefix + c["name"]: c for c in customers}

    have_ns = [n["name"] for n in json.loads(run("ip", "-json", "netns", "list") or "[]")]
    owned = {n for n in have_ns if n.startswith(prefix)}
    for n in sorted(owned - want_ns.keys()):
        problem("leaked namespace %s" % n)
    for n in sorted(want_ns.keys() - owned):
        problem("missing namespace %s" % n)

    metal_links = {l["ifname"]: l for l in ipj(metal, "link", "show")}
    for n in sorted(k for k in metal_links if k.startswith(prefix)):
        if n not in want_ns:
            problem("leaked metal link %s" % n)

    routes = ipj(metal, "route", "show", "table", str(GRE_TABLE))
    want_routes = {}
    for name, c in want_ns.items():
        msw, csw = link_addrs(c["id"])
        for p in c.get("prefixes", []) + [e + "/32" for e in c.get("tunnelEndpoints", [])]:
            want_routes[p] = (name, csw)
    have_routes = {}
    for r in routes:
        if r.get("protocol") not in (RTPROT, str(RTPROT)):
            continue
        have_routes[norm(r["dst"])] = (r.get("dev"), r.get("gateway"))
    for dst, (dev, gw) in sorted(want_routes.items()):
        got = have_routes.get(dst)
        if got is None:
            problem("missing route %s in table %d" % (dst, GRE_TABLE))
        elif got != (dev, gw if ":" not in dst else None) and got != (dev, gw):
            problem("route %s: have dev %s via %s, want dev %s via %s" % (dst, got[0], got[1], dev, gw))
    for dst in sorted(have_routes.keys() - want_routes.keys()):
        problem("leaked route %s in table %d" % (dst, GRE_TABLE))

    rules = [r for r in ipj(metal, "rule", "show") if RULE_PRIO <= r.get("priority", 0) < RULE_PRIO + 100]
    if customers:
        ok = any(r.get("table") in (str(GRE_TABLE), GRE_TABLE) and
                 int(str(r.get("fwmark", "0")), 0) == FWMARK for r in rules)
        if not ok:
            problem("missing metal rule fwmark 0x%x lookup %d: %s" % (FWMARK, GRE_TABLE, rules))

    # marking
    elems = set()
    try:
        out = run("ip", "netns", "exec", metal, "nft", "-j", "list", "set", "inet", prefix + "mark", "prefixes4")
        for item in json.loads(out)["nftables"]:
            for e in item.get("set", {}).get("elem", []):
                if isinstance(e, dict) and "elem" in e:  # with a comment
                    e = e["elem"]["val"]
                if isinstance(e, dict) and "prefix" in e:
                    elems.add("%s/%d" % (e["prefix"]["addr"], e["prefix"]["len"]))
                elif isinstance(e, dict) and "range" in e:
                    lo, hi = e["range"]
                    for net in ipaddress.summarize_address_range(ipaddress.ip_address(lo), ipaddress.ip_address(hi)):
                        elems.add(str(net))
                elif isinstance(e, str):
                    elems.add(e + "/32")
    except subprocess.CalledProcessError:
        if customers:
            problem("nft table inet %smark (set prefixes4) missing" % prefix)
    want_marks = set()
    for c in customers:
        want_marks |= {p for p in c.get("prefixes", []) if ":" not in p}
        want_marks |= {e + "/32" for e in c.get("tunnelEndpoints", []) if ":" not in e}
    for p in sorted(want_marks - elems):
        problem("prefix %s not marked" % p)
    for p in sorted(elems - want_marks):
        problem("leaked mark for %s" % p)

    for name, c in sorted(want_ns.items()):
        if name not in owned:
            continue
        msw, csw = link_addrs(c["id"])
        l = metal_links.get(name)
        if not l:
            problem("missing metal veth %s" % name)
        else:
            if "UP" not in l.get("flags", []):
                problem("metal veth %s is down" % name)
            addrs = {"%s/%d" % (a["local"], a["prefixlen"]) for a in
                     ipj(metal, "addr", "show", "dev", name)[0].get("addr_info", [])
                     if a.get("family") == "inet"}
            if addrs != {msw + "/31"}:
                problem("metal veth %s addresses %s, want %s/31" % (name, addrs, msw))
            if sysctl(metal, "net/ipv4/conf/%s/rp_filter" % name) != "0":
                problem("rp_filter on metal %s is not 0" % name)
        clinks = {x["ifname"]: x for x in ipj(name, "link", "show")}
        peer = clinks.get("metal0")
        if not peer or "UP" not in peer.get("flags", []):
            problem("%s: metal0 missing or down" % name)
        else:
            addrs = {"%s/%d" % (a["local"], a["prefixlen"]) for a in
                     ipj(name, "addr", "show", "dev", "metal0")[0].get("addr_info", [])
                     if a.get("family") == "inet"}
            if addrs != {csw + "/31"}:
                problem("%s: metal0 addresses %s, want %s/31" % (name, addrs, csw))
        lo = {"%s/%d" % (a["local"], a["prefixlen"]) for a in
              ipj(name, "addr", "show", "dev", "lo")[0].get("addr_info", [])
              if a.get("family") == "inet" and a["local"] != "127.0.0.1"}
        want_lo = {e + "/32" for e in c.get("tunnelEndpoints", [])}
        if lo != want_lo:
            problem("%s: lo addresses %s, want %s" % (name, lo, want_lo))
        croutes = ipj(name, "route", "show", "table", str(CUST_TABLE))
        if not any(r.get("dst") == "default" and r.get("gateway") == msw and r.get("dev") == "metal0"
                   for r in croutes):
            problem("%s: no default via %s dev metal0 in table %d: %s" % (name, msw, CUST_TABLE, croutes))
        holes = {norm(r["dst"]) for r in croutes if r.get("type") == "blackhole"}
        want_holes = {p for p in c.get("prefixes", []) if ":" not in p}
        if holes != want_holes:
            problem("%s: blackhole routes %s in table %d, want %s" % (name, sorted(holes), CUST_TABLE, sorted(want_holes)))
        crules = ipj(name, "rule", "show")
        if not any(r.get("priority") == RULE_PRIO and r.get("table") in (str(CUST_TABLE), CUST_TABLE)
                   for r in crules):
            problem("%s: no rule priority %d lookup %d" % (name, RULE_PRIO, CUST_TABLE))
        if sysctl(name, "net/ipv4/ip_forward") != "1":
            problem("%s: ip_forward is not 1" % name)

    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
