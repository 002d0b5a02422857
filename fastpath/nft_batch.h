/* nftables transactions and queries over one netfilter netlink socket.
 *
 * A batch is one nft transaction: BATCH_BEGIN, any number of messages, each
 * with its own sequence number and NLM_F_ACK, BATCH_END, sent in a single
 * sendmsg() (the kernel applies a batch only if it arrives in one skb; the
 * buffer grows in pages, sent as one iovec array). Every ACK is read, also
 * after an error, and each error is kept with the message that caused it,
 * together with the kernel's extended-ACK text. The kernel applies all of
 * the batch or none of it.
 *
 * Nothing here knows about mt's objects: callers build message payloads with
 * libnftnl (nftnl_*_nlmsg_build_payload) into the buffer this helper hands
 * out, and tag each message with a value of their own (a plan index) that
 * maps errors back. The socket is the caller's, so the same code serves the
 * metal namespace and, later, sockets opened inside customer namespaces.
 *
 * Error convention: 0 or -errno; libmnl's -1 + errno stays inside.
 */
#ifndef MT_NFT_BATCH_H
#define MT_NFT_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

#include "mt_cleanup.h"

/* Largest single message a caller may build (the page overrun area). The
 * libnftnl builders write without bounds checks, so callers keep each message
 * well below this (mt's messages are a few hundred bytes). */
#define MT_NFT_MSG_MAX (64 * 1024)

/* Opens a NETLINK_NETFILTER socket in the calling thread's current network
 * namespace, bound, with extended ACKs and capped ACKs enabled. 0 or -errno. */
int mt_nft_socket_open(struct mnl_socket **nl);
void mt_nft_socket_closep(struct mnl_socket **nl);
#define _cleanup_nft_socket_ MT_CLEANUP(mt_nft_socket_closep)

/* A fresh sequence number (process-wide counter seeded from the clock). */
uint32_t mt_nft_seq_next(void);

/* Sends one request (a GET, or a dump with NLM_F_DUMP) built by the caller
 * and calls cb for every reply message until the dump ends or the request is
 * acknowledged. Non-dump requests must carry NLM_F_ACK. cb returns
 * MNL_CB_OK to go on, MNL_CB_STOP to stop early or MNL_CB_ERROR (with errno
 * set) to fail. Returns 0; -EINTR when the kernel flagged the dump
 * inconsistent (NLM_F_DUMP_INTR: dump again); the kernel's -errno (extack
 * text copied to extack when not NULL); or -errno of a local failure. */
int mt_nft_query(struct mnl_socket *nl, struct nlmsghdr *req, mnl_cb_t cb,
		 void *data, char *extack, size_t extack_len);

/* The ruleset generation id of the socket's namespace (NFT_MSG_GETGEN). Any
 * committed nft transaction changes it. 0 or -errno. */
int mt_nft_genid(struct mnl_socket *nl, uint32_t *genid);

struct mt_nft_batch;

/* A new, empty batch. With genid != 0 the BEGIN message carries it
 * (NFNL_BATCH_GENID) and the kernel refuses the whole batch with -ERESTART
 * when the ruleset changed since genid was read: plan from a snapshot, send
 * with its genid, re-read and re-plan on -ERESTART. NULL on ENOMEM. */
struct mt_nft_batch *mt_nft_batch_new(uint32_t genid);
void mt_nft_batch_free(struct mt_nft_batch *b);
void mt_nft_batch_freep(struct mt_nft_batch **b);
#define _cleanup_nft_batch_ MT_CLEANUP(mt_nft_batch_freep)

/* Starts the next message: writes a netlink + nfgenmsg header of nft
 * message type (NFT_MSG_*), family (NFPROTO_*) and flags (NLM_F_REQUEST and
 * NLM_F_ACK are added) with the next sequence number, and returns it; the
 * caller appends the payload (at most MT_NFT_MSG_MAX bytes in all) and then
 * calls mt_nft_batch_msg_end. tag is the caller's, returned by
 * mt_nft_batch_tag. NULL on ENOMEM. */
struct nlmsghdr *mt_nft_batch_msg(struct mt_nft_batch *b, uint16_t type,
				  uint16_t family, uint16_t flags, long tag);
/* Closes the message started last. 0, or -EMSGSIZE when it outgrew
 * MT_NFT_MSG_MAX, -ENOMEM when no new page could be had. */
int mt_nft_batch_msg_end(struct mt_nft_batch *b);

/* Messages in the batch, BEGIN and END not counted. */
size_t mt_nft_batch_count(const struct mt_nft_batch *b);
long mt_nft_batch_tag(const struct mt_nft_batch *b, size_t i);

/* Appends END, sends the batch in one sendmsg (growing the socket buffers as
 * needed) and reads every ACK. Returns 0 when the kernel committed the
 * transaction; otherwise nothing of it was applied and the return value is
 * the first error the kernel reported (-ERESTART: generation changed), or
 * -errno of a local failure (-EIO when ACKs were lost). A batch is sent once.
 * An empty batch is not sent and returns 0. */
int mt_nft_batch_send(struct mt_nft_batch *b, struct mnl_socket *nl);

/* After send: the error the kernel reported for message i (0 = none) and its
 * extended-ACK text (NULL when none). */
int mt_nft_batch_error(const struct mt_nft_batch *b, size_t i,
		       const char **extack);
/* After send: an error reported against the batch as a whole (BEGIN), e.g.
 * -ERESTART for a generation mismatch, or a commit failure. 0 = none. */
int mt_nft_batch_error_batch(const struct mt_nft_batch *b,
			     const char **extack);

#endif
