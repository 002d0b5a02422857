/* The health-check probe on the wire (docs/health.md). Pure: build and
 * parse, no I/O.
 *
 * What mt sends (direct encapsulation, from the customer's namespace on a
 * raw IP_HDRINCL socket):
 *
 *   outer IPv4   src edge_endpoint, dst router_endpoint, DF, TTL of the
 *                tunnel, protocol 47, id = low 16 bits of seq
 *   GRE          RFC 2784/2890: flags 0 (or K with the 4-byte key),
 *                protocol 0x0800
 *   inner IPv4   reply-style: src target, dst edge side; request-style:
 *                the other way round; TTL 64, protocol 1
 *   ICMP         echo reply (type 0) or echo request (type 8), code 0,
 *                id = ident (the tunnel's index in its customer), sequence
 *                = low 16 bits of seq
 *   payload      MT_PROBE_PAYLOAD bytes, big endian:
 *                  0  "mtHC"    magic
 *                  4  u8 1      version
 *                  5  3 bytes   0
 *                  8  u32       token (the tunnel's, unique in the agent)
 *                 12  u32       seq (full)
 *                 16  u64       send time, CLOCK_REALTIME ns
 *                 24  8 bytes   0
 *
 * What comes back is an ICMP echo reply with the same payload (a router
 * echoes a request's payload), read with its IPv4 header from a raw ICMP
 * socket.
 */
#ifndef MT_PROBEWIRE_H
#define MT_PROBEWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MT_PROBE_MAGIC "mtHC"
#define MT_PROBE_VERSION 1
#define MT_PROBE_PAYLOAD 32
/* outer IPv4 + GRE with key + inner IPv4 + ICMP + payload */
#define MT_PROBE_MAX_LEN (20 + 8 + 20 + 8 + MT_PROBE_PAYLOAD)

struct mt_probe_spec {
	bool request;			/* echo request (else echo reply) */
	uint32_t outer_src, outer_dst;	/* network byte order */
	uint8_t outer_ttl;
	bool has_key;
	uint32_t key;
	uint32_t inner_src, inner_dst;	/* network byte order */
	uint16_t ident;
	uint32_t token;
};

/* A probe's echo as received. Addresses in network byte order. */
struct mt_probe_echo {
	uint32_t src, dst;
	uint8_t ttl;
	uint16_t ident;
	uint32_t token, seq;
	uint64_t sent_ns;
};

/* Writes the whole packet (outer IPv4 first) into buf; returns its length,
 * or -ENOSPC when len is too small. */
int mt_probe_build(const struct mt_probe_spec *s, uint32_t seq,
		   uint64_t sent_ns, uint8_t *buf, size_t len);

/* Parses an IPv4 packet as a raw ICMP socket returns it. 0 for an echo
 * reply of ours (*out filled); -ENOMSG for anything else (not ICMP, not an
 * echo reply, not our magic or version); -EBADMSG for ours but malformed
 * (lengths, IPv4 or ICMP checksum). Reads nothing past len. */
int mt_probe_parse(const uint8_t *pkt, size_t len, struct mt_probe_echo *out);

/* The Internet checksum of buf (RFC 1071), folded, not inverted. */
uint16_t mt_probe_csum_fold(const uint8_t *buf, size_t len);

/* A classic BPF program for the raw ICMP socket: accept IPv4 ICMP echo
 * replies whose payload starts with the magic, drop the rest. Copies it
 * into prog (at least MT_PROBE_FILTER_LEN entries, struct sock_filter);
 * returns the instruction count. */
#define MT_PROBE_FILTER_LEN 12
struct sock_filter;
size_t mt_probe_filter(struct sock_filter *prog);

#endif
