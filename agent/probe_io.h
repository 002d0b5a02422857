/* The prober's sockets in one customer namespace (docs/health.md): a raw
 * IP_HDRINCL socket that sends probes built by lib/mt_probewire.h, and a
 * raw ICMP socket, filtered to mt's echo replies, that receives them with
 * the kernel's receive timestamp. */
#ifndef MT_PROBE_IO_H
#define MT_PROBE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "mt_probewire.h"

struct mt_probe_sock {
	int tx_fd, rx_fd;
};

/* One probe to send: the packet and its outer destination (network
 * order); err gets 0 or the errno of its send. */
struct mt_probe_tx {
	const uint8_t *buf;
	size_t len;
	uint32_t dst;
	uint32_t seq; /* the caller's, carried along */
	int err;
};

/* One reply received: the parsed echo and its kernel receive time
 * (CLOCK_REALTIME ns). */
struct mt_probe_rx {
	struct mt_probe_echo echo;
	uint64_t rx_ns;
};

/* Opens both sockets inside /run/netns/NETNS (setns on the calling thread,
 * which goes back to its own namespace before returning, also on error).
 * 0, or -errno with a message naming the namespace and the call in err. */
int mt_probe_sock_open(const char *netns, struct mt_probe_sock *ps, char *err,
		       size_t errlen);
/* Closes both; idempotent. */
void mt_probe_sock_close(struct mt_probe_sock *ps);
/* The receive socket, for poll/epoll. */
int mt_probe_sock_fd(const struct mt_probe_sock *ps);

/* Sends n probes, sendmmsg by batches. Returns n; each v[i].err is 0 or
 * the errno its send failed with (the caller counts that probe as failed:
 * a tunnel whose router is unreachable from here is not healthy). */
int mt_probe_sock_send(struct mt_probe_sock *ps, struct mt_probe_tx *v,
		       size_t n);
/* Reads up to n pending probe replies (recvmmsg, non-blocking); what is
 * not ours or is malformed is skipped. Returns the count (0: nothing
 * pending), or -errno. */
int mt_probe_sock_recv(struct mt_probe_sock *ps, struct mt_probe_rx *v,
		       size_t n);

#endif
