/* Parsing and checksum helpers for the GRE programs: a bounds-checked cursor
 * over direct packet access (`ptr + 1 > data_end` before every read), the
 * IPv4 header checksum, a GRE checksum over the (possibly non-linear) skb
 * with a compile-time loop bound, and drop accounting. */
#ifndef MT_GRE_PARSE_H
#define MT_GRE_PARSE_H

#include <stdbool.h>

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "mt_gre_maps.h"
#include "mt_gre_shared.h"

#define MT_IP_MF 0x2000
#define MT_IP_DF 0x4000
#define MT_IP_OFFSET 0x1fff

/* The GRE base header (RFC 2784): flags+version, protocol. */
struct mt_grehdr {
	__be16 flags;
	__be16 proto;
};

/* A read cursor over [pos, end). */
struct mt_cursor {
	void *pos;
	void *end;
};

static __always_inline void mt_cursor_init(struct mt_cursor *c,
					   struct __sk_buff *skb)
{
	c->pos = (void *)(long)skb->data;
	c->end = (void *)(long)skb->data_end;
}

/* Returns a pointer to the next len bytes and advances, or NULL when they
 * are not all inside the linear packet data. */
#define MT_CURSOR_PULL(c, type)                                                \
	({                                                                     \
		type *_p = (c)->pos;                                           \
		if ((void *)(_p + 1) > (c)->end)                               \
			_p = NULL;                                             \
		else                                                           \
			(c)->pos = (void *)(_p + 1);                           \
		_p;                                                            \
	})

static __always_inline __u16 mt_csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Checksum of a 20-byte IPv4 header (its check field must be 0). */
static __always_inline __u16 mt_ipv4_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u64 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	return mt_csum_fold(sum);
}

/* Largest GRE packet whose checksum is verified: the IPv4 maximum. */
#define MT_CSUM_CHUNK 256
#define MT_CSUM_CHUNKS (65536 / MT_CSUM_CHUNK)

struct mt_csum_ctx {
	struct __sk_buff *skb;
	__u32 off;
	__u32 len;
	__u32 done;
	__u32 bad;
	__s64 sum;
};

/* One bpf_loop step: sums the next chunk (at most MT_CSUM_CHUNK bytes).
 * Returns 1 to stop. */
static long mt_csum_step(__u32 i, void *data)
{
	__u8 buf[MT_CSUM_CHUNK] __attribute__((aligned(8)));
	struct mt_csum_ctx *c = data;
	__u32 n, n4;

	if (c->done >= c->len)
		return 1;
	n = c->len - c->done;
	if (n > MT_CSUM_CHUNK)
		n = MT_CSUM_CHUNK;
	/* Verifier: keep n a bounded unsigned value in a register of its
	 * own, whatever the compiler did with the clamp above. */
	asm volatile("" : "+r"(n));
	/* 1..MT_CSUM_CHUNK by construction (n already is): older verifiers
	 * (6.1) only accept a read length they can prove nonzero. */
	n = ((n - 1) & (MT_CSUM_CHUNK - 1)) + 1;
	n4 = (n + 3) & ~3u;
	if (n != n4)
		*(__u32 *)&buf[(n4 - 4) & (MT_CSUM_CHUNK - 4)] = 0;
	if (bpf_skb_load_bytes(c->skb, c->off + c->done, buf, n) < 0)
		goto bad;
	asm volatile("" : "+r"(n4));
	n4 &= 2 * MT_CSUM_CHUNK - 1;
	if (n4 > MT_CSUM_CHUNK)
		goto bad;
	c->sum = bpf_csum_diff(NULL, 0, (__be32 *)buf, n4, (__wsum)c->sum);
	if (c->sum < 0)
		goto bad;
	c->done += n;
	return 0;
bad:
	c->bad = 1;
	return 1;
}

/* True when the Internet checksum over skb bytes [off, off + len) folds to
 * zero (a valid RFC 1071 checksum covering its own field). Works on
 * non-linear skbs: bpf_loop copies 256-byte chunks to the stack with
 * bpf_skb_load_bytes and sums them with bpf_csum_diff, which needs a length
 * that is a multiple of 4, so a short last chunk is zero-padded (padding
 * with zero bytes is what RFC 1071 prescribes for odd lengths; every chunk
 * but the last has an even length, so chunk sums chain). bpf_loop rather
 * than a bounded loop: the verifier walks the callback once, whereas
 * unrolling 256 iterations exceeds its 1M instruction budget. */
static __always_inline bool mt_skb_csum_ok(struct __sk_buff *skb, __u32 off,
					   __u32 len)
{
	struct mt_csum_ctx c = {.skb = skb, .off = off, .len = len};

	if (bpf_loop(MT_CSUM_CHUNKS, mt_csum_step, &c, 0) < 0)
		return false;
	return !c.bad && c.done == len && mt_csum_fold((__u64)c.sum) == 0;
}

/* Counts one drop globally and, when tunnel (its wire ifindex) is
 * nonzero, for that tunnel. Returns TC_ACT_SHOT. */
static __always_inline int mt_drop(__u32 tunnel, enum mt_gre_drop reason)
{
	struct mt_gre_tun_drop_key k = {.ifindex = tunnel, .reason = reason};
	__u32 idx = reason;
	__u64 *cnt, one = 1;

	cnt = bpf_map_lookup_elem(&mt_gre_drops, &idx);
	if (cnt)
		*cnt += 1;
	if (!tunnel)
		return TC_ACT_SHOT;
	cnt = bpf_map_lookup_elem(&mt_gre_tun_drops, &k);
	if (cnt)
		*cnt += 1;
	else if (bpf_map_update_elem(&mt_gre_tun_drops, &k, &one,
				     BPF_NOEXIST) < 0) {
		/* another CPU created it first */
		cnt = bpf_map_lookup_elem(&mt_gre_tun_drops, &k);
		if (cnt)
			*cnt += 1;
	}
	return TC_ACT_SHOT;
}

#endif
