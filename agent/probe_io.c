/* The prober's sockets: see probe_io.h. */
#include "probe_io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define RCVBUF (1 << 20)

static int fail(char *err, size_t errlen, const char *netns, const char *what,
		int e)
{
	snprintf(err, errlen, "namespace %s: %s: %s", netns, what, strerror(e));
	return -e;
}

static int open_here(struct mt_probe_sock *ps, const char *netns, char *err,
		     size_t errlen)
{
	struct sock_filter f[MT_PROBE_FILTER_LEN];
	struct sock_fprog prog = { .filter = f };
	int one = 1, size = RCVBUF;

	ps->tx_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
			   IPPROTO_RAW);
	if (ps->tx_fd < 0)
		return fail(err, errlen, netns, "raw send socket", errno);
	ps->rx_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
			   IPPROTO_ICMP);
	if (ps->rx_fd < 0)
		return fail(err, errlen, netns, "raw ICMP socket", errno);
	prog.len = (unsigned short)mt_probe_filter(f);
	if (setsockopt(ps->rx_fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog,
		       sizeof(prog)) < 0)
		return fail(err, errlen, netns, "SO_ATTACH_FILTER", errno);
	if (setsockopt(ps->rx_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one,
		       sizeof(one)) < 0)
		return fail(err, errlen, netns, "SO_TIMESTAMPNS", errno);
	/* a burst of replies (10,000 tunnels) must not overflow */
	if (setsockopt(ps->rx_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size,
		       sizeof(size)) < 0)
		setsockopt(ps->rx_fd, SOL_SOCKET, SO_RCVBUF, &size,
			   sizeof(size));
	return 0;
}

int mt_probe_sock_open(const char *netns, struct mt_probe_sock *ps, char *err,
		       size_t errlen)
{
	char path[128];
	int self, ns, r;

	ps->tx_fd = ps->rx_fd = -1;
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return fail(err, errlen, netns, "open own namespace", errno);
	snprintf(path, sizeof(path), "/run/netns/%s", netns);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0) {
		r = fail(err, errlen, netns, "open", errno);
		close(self);
		return r;
	}
	if (setns(ns, CLONE_NEWNET) < 0) {
		r = fail(err, errlen, netns, "setns", errno);
	} else {
		r = open_here(ps, netns, err, errlen);
		if (setns(self, CLONE_NEWNET) < 0) {
			/* cannot happen; a thread left in the customer's
			 * namespace would open the next one's sockets there */
			r = fail(err, errlen, netns, "setns back", errno);
		}
	}
	close(ns);
	close(self);
	if (r < 0)
		mt_probe_sock_close(ps);
	return r;
}

void mt_probe_sock_close(struct mt_probe_sock *ps)
{
	if (ps->tx_fd >= 0)
		close(ps->tx_fd);
	if (ps->rx_fd >= 0)
		close(ps->rx_fd);
	ps->tx_fd = ps->rx_fd = -1;
}

int mt_probe_sock_fd(const struct mt_probe_sock *ps)
{
	return ps->rx_fd;
}

int mt_probe_sock_send(struct mt_probe_sock *ps, struct mt_probe_tx *v,
		       size_t n)
{
	struct mmsghdr m[BATCH];
	struct iovec io[BATCH];
	struct sockaddr_in to[BATCH];
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < BATCH ? n - done : BATCH;
		int r;

		for (size_t i = 0; i < k; i++) {
			struct mt_probe_tx *t = &v[done + i];

			to[i] = (struct sockaddr_in){ .sin_family = AF_INET };
			to[i].sin_addr.s_addr = t->dst;
			io[i] = (struct iovec){ (void *)t->buf, t->len };
			m[i] = (struct mmsghdr){ 0 };
			m[i].msg_hdr.msg_name = &to[i];
			m[i].msg_hdr.msg_namelen = sizeof(to[i]);
			m[i].msg_hdr.msg_iov = &io[i];
			m[i].msg_hdr.msg_iovlen = 1;
			t->err = 0;
		}
		r = sendmmsg(ps->tx_fd, m, (unsigned)k, 0);
		if (r < 0) {
			/* the first message failed: it alone, go on */
			if (errno == EINTR)
				continue;
			v[done].err = errno;
			done++;
			continue;
		}
		done += (size_t)r;
	}
	return (int)done;
}

int mt_probe_sock_recv(struct mt_probe_sock *ps, struct mt_probe_rx *v,
		       size_t n)
{
	struct mmsghdr m[BATCH];
	struct iovec io[BATCH];
	uint8_t buf[BATCH][256];
	char ctl[BATCH][CMSG_SPACE(sizeof(struct timespec))];
	size_t want = n < BATCH ? n : BATCH;
	int r, got = 0;

	for (size_t i = 0; i < want; i++) {
		io[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
		m[i] = (struct mmsghdr){ 0 };
		m[i].msg_hdr.msg_iov = &io[i];
		m[i].msg_hdr.msg_iovlen = 1;
		m[i].msg_hdr.msg_control = ctl[i];
		m[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
	}
	r = recvmmsg(ps->rx_fd, m, (unsigned)want, MSG_DONTWAIT, NULL);
	if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (int i = 0; i < r; i++) {
		struct mt_probe_rx *out = &v[got];
		struct cmsghdr *c;

		if (mt_probe_parse(buf[i], m[i].msg_len, &out->echo) < 0)
			continue;
		out->rx_ns = 0;
		for (c = CMSG_FIRSTHDR(&m[i].msg_hdr); c;
		     c = CMSG_NXTHDR(&m[i].msg_hdr, c))
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_TIMESTAMPNS) {
				struct timespec ts;

				memcpy(&ts, CMSG_DATA(c), sizeof(ts));
				out->rx_ns = (uint64_t)ts.tv_sec * 1000000000ull +
					     (uint64_t)ts.tv_nsec;
			}
		got++;
	}
	return got;
}
