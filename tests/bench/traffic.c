/* traffic: packet generators and counters for the tunnel benchmarks
 * (tests/bench/tunnels). One process makes its sockets in the namespaces
 * it is given (/run/netns/NAME): a socket stays in the namespace it was
 * created in, so the sender and the receiver run as two threads of this
 * process, and both ends are timed on one clock.
 *
 *   traffic tcp SRC_NS DST_NS ADDR PORT SECONDS
 *       One TCP connection from SRC_NS to ADDR:PORT (the listener is made
 *       in DST_NS, bound to ADDR), bulk data for 0.5 s of warm-up (slow
 *       start, path MTU discovery) then SECONDS measured: the bytes the
 *       receiver read in that window over its length. Prints
 *       {"mbit_s", "bytes", "seconds", "mss", "retrans"} (mss and retrans
 *       from the sender's TCP_INFO).
 *   traffic udp SRC_NS DST_NS ADDR PORT SECONDS [SIZE]
 *       UDP datagrams of SIZE bytes of IPv4 packet (default 46: a 64-byte
 *       Ethernet frame with its FCS) sent with sendmmsg (batches of 64) as
 *       fast as the sender goes, from SRC_NS; a receiver in DST_NS counts
 *       what its socket got (recvmmsg). 0.5 s warm-up, then SECONDS
 *       measured. Prints {"pps", "sent_pps", "received", "sent",
 *       "rcvbuf_errors"} (rcvbuf_errors: the receiving namespace's
 *       Udp RcvbufErrors during the window: packets the path delivered
 *       but the counting socket had no room for).
 *   traffic offload NS DEV
 *       Prints {"tx_csum": "on"|"off", "tso": "on"|"off"} for DEV in NS
 *       (ethtool ioctls).
 *   traffic tunnels NS_PREFIX DEV...
 *       For every namespace /run/netns/NS_PREFIX*, checks that each DEV
 *       exists and is up. Prints {"namespaces", "complete", "missing"}
 *       (namespaces lacking at least one device). Exit 1 when missing.
 *
 * Exit 2 on usage errors, 1 on failures (with a message on stderr). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP_US 500000
#define BATCH 64
#define TCP_BUF (256 * 1024)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int die(const char *what, int err)
{
	fprintf(stderr, "traffic: %s: %s\n", what, strerror(err));
	return 1;
}

/* ---- namespaces ---------------------------------------------------------- */

static int self_ns = -1;

static int ns_open(const char *name)
{
	char path[300];

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* Switches the calling thread into namespace NAME (NULL: back to the one
 * the process started in). 0 or -errno. */
static int ns_enter(const char *name)
{
	int fd, r;

	if (self_ns < 0) {
		self_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (self_ns < 0)
			return -errno;
	}
	if (!name)
		return setns(self_ns, CLONE_NEWNET) < 0 ? -errno : 0;
	fd = ns_open(name);
	if (fd < 0)
		return -errno;
	r = setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* A socket made in namespace ns. -errno on failure. */
static int socket_in(const char *ns, int type)
{
	int fd, r;

	if ((r = ns_enter(ns)) < 0)
		return r;
	fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	r = fd < 0 ? -errno : fd;
	ns_enter(NULL);
	return r;
}

/* Udp RcvbufErrors of namespace ns (/proc/thread-self/net/snmp read from
 * inside it), or -1. */
static long long udp_rcvbuf_errors(const char *ns)
{
	char line[1024], head[1024] = "";
	long long v = -1;
	FILE *f;

	if (ns_enter(ns) < 0)
		return -1;
	f = fopen("/proc/thread-self/net/snmp", "re");
	ns_enter(NULL);
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Udp:", 4) != 0)
			continue;
		if (!head[0]) {
			snprintf(head, sizeof(head), "%s", line);
			continue;
		}
		/* the value line: find the column named RcvbufErrors */
		char *hs, *vs, *h = strtok_r(head, " \n", &hs);
		char *x = strtok_r(line, " \n", &vs);

		while (h && x) {
			if (strcmp(h, "RcvbufErrors") == 0) {
				v = atoll(x);
				break;
			}
			h = strtok_r(NULL, " \n", &hs);
			x = strtok_r(NULL, " \n", &vs);
		}
		break;
	}
	fclose(f);
	return v;
}

/* ---- the shared run state ------------------------------------------------ */

struct run {
	int tx, rx;		/* sender socket, receiver (or listener) */
	size_t size;		/* udp: datagram payload bytes */
	atomic_bool stop;
	atomic_ullong rx_count;	/* bytes (tcp) or datagrams (udp) received */
	atomic_ullong tx_count;	/* datagrams sent (udp) */
	int err;		/* first thread error (errno) */
};

static void *tcp_receiver(void *arg)
{
	struct run *r = arg;
	char *buf = malloc(TCP_BUF);
	int c = accept4(r->rx, NULL, NULL, SOCK_CLOEXEC);
	ssize_t n;

	if (c < 0 || !buf) {
		r->err = errno;
		free(buf);
		return NULL;
	}
	while ((n = read(c, buf, TCP_BUF)) > 0)
		atomic_fetch_add_explicit(&r->rx_count, (unsigned long long)n,
					  memory_order_relaxed);
	close(c);
	free(buf);
	return NULL;
}

static void *tcp_sender(void *arg)
{
	struct run *r = arg;
	char *buf = calloc(1, TCP_BUF);

	if (!buf) {
		r->err = ENOMEM;
		return NULL;
	}
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed))
		if (write(r->tx, buf, TCP_BUF) < 0 && errno != EINTR) {
			r->err = errno;
			break;
		}
	free(buf);
	return NULL;
}

static void *udp_sender(void *arg)
{
	struct run *r = arg;
	struct mmsghdr m[BATCH];
	struct iovec v[BATCH];
	char *buf = calloc(BATCH, r->size ? r->size : 1);

	if (!buf) {
		r->err = ENOMEM;
		return NULL;
	}
	memset(m, 0, sizeof(m));
	for (int i = 0; i < BATCH; i++) {
		v[i].iov_base = buf + i * r->size;
		v[i].iov_len = r->size;
		m[i].msg_hdr.msg_iov = &v[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		int n = sendmmsg(r->tx, m, BATCH, 0);

		if (n > 0)
			atomic_fetch_add_explicit(&r->tx_count,
						  (unsigned long long)n,
						  memory_order_relaxed);
		else if (n < 0 && errno != ENOBUFS && errno != EAGAIN &&
			 errno != ECONNREFUSED && errno != EINTR) {
			r->err = errno;
			break;
		}
	}
	free(buf);
	return NULL;
}

static void *udp_receiver(void *arg)
{
	struct run *r = arg;
	struct mmsghdr m[BATCH];
	struct iovec v[BATCH];
	char buf[BATCH][256];
	struct timeval tv = { .tv_usec = 100000 };

	setsockopt(r->rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(m, 0, sizeof(m));
	for (int i = 0; i < BATCH; i++) {
		v[i].iov_base = buf[i];
		v[i].iov_len = sizeof(buf[i]);
		m[i].msg_hdr.msg_iov = &v[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		int n = recvmmsg(r->rx, m, BATCH, MSG_WAITFORONE, NULL);

		if (n > 0)
			atomic_fetch_add_explicit(&r->rx_count,
						  (unsigned long long)n,
						  memory_order_relaxed);
	}
	return NULL;
}

/* Sleeps the warm-up, then measures the window: *d_rx and *d_tx the counters'
 * growth, *secs the window's length. */
static void measure(struct run *r, double seconds, unsigned long long *d_rx,
		    unsigned long long *d_tx, double *secs)
{
	unsigned long long rx0, tx0;
	double t0;

	usleep(WARMUP_US);
	rx0 = atomic_load(&r->rx_count);
	tx0 = atomic_load(&r->tx_count);
	t0 = now_s();
	usleep((useconds_t)(seconds * 1e6));
	*d_rx = atomic_load(&r->rx_count) - rx0;
	*d_tx = atomic_load(&r->tx_count) - tx0;
	*secs = now_s() - t0;
}

static int parse_addr(const char *a, const char *port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(port));
	return inet_pton(AF_INET, a, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

static int cmd_tcp(char **argv)
{
	struct run r = { .tx = -1, .rx = -1 };
	struct sockaddr_in sa;
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	double seconds = atof(argv[4]), secs;
	unsigned long long bytes, unused;
	pthread_t rt, st;
	int one = 1;

	if (parse_addr(argv[2], argv[3], &sa) < 0 || seconds <= 0) {
		fprintf(stderr, "traffic tcp: bad address, port or seconds\n");
		return 2;
	}
	r.rx = socket_in(argv[1], SOCK_STREAM);
	r.tx = socket_in(argv[0], SOCK_STREAM);
	if (r.rx < 0 || r.tx < 0)
		return die("socket", r.rx < 0 ? -r.rx : -r.tx);
	setsockopt(r.rx, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(r.rx, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return die("bind (is ADDR an address of DST_NS?)", errno);
	if (listen(r.rx, 4) < 0)
		return die("listen", errno);
	if (pthread_create(&rt, NULL, tcp_receiver, &r))
		return die("thread", EAGAIN);
	if (connect(r.tx, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return die("connect", errno);
	if (pthread_create(&st, NULL, tcp_sender, &r))
		return die("thread", EAGAIN);
	measure(&r, seconds, &bytes, &unused, &secs);
	memset(&ti, 0, sizeof(ti));
	getsockopt(r.tx, IPPROTO_TCP, TCP_INFO, &ti, &tl);
	atomic_store(&r.stop, true);
	pthread_join(st, NULL);
	shutdown(r.tx, SHUT_WR);
	pthread_join(rt, NULL);
	close(r.tx);
	close(r.rx);
	if (r.err)
		return die("transfer", r.err);
	printf("{\"mbit_s\": %.1f, \"bytes\": %llu, \"seconds\": %.3f, \"mss\": %u, \"retrans\": %u}\n",
	       bytes * 8 / secs / 1e6, bytes, secs, ti.tcpi_snd_mss,
	       ti.tcpi_total_retrans);
	return 0;
}

static int cmd_udp(int argc, char **argv)
{
	struct run r = { .tx = -1, .rx = -1 };
	struct sockaddr_in sa;
	double seconds = atof(argv[4]), secs;
	unsigned long long rx, tx;
	long long e0, e1;
	int size = argc > 5 ? atoi(argv[5]) : 46, buf = 64 << 20;
	pthread_t rt, st;

	if (parse_addr(argv[2], argv[3], &sa) < 0 || seconds <= 0 ||
	    size < 28 || size > 1500) {
		fprintf(stderr, "traffic udp: bad address, port, seconds or size (28-1500)\n");
		return 2;
	}
	r.size = (size_t)size - 28; /* IPv4 + UDP headers */
	r.rx = socket_in(argv[1], SOCK_DGRAM);
	r.tx = socket_in(argv[0], SOCK_DGRAM);
	if (r.rx < 0 || r.tx < 0)
		return die("socket", r.rx < 0 ? -r.rx : -r.tx);
	setsockopt(r.rx, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf));
	if (bind(r.rx, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return die("bind (is ADDR an address of DST_NS?)", errno);
	if (connect(r.tx, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return die("connect", errno);
	if (pthread_create(&rt, NULL, udp_receiver, &r) ||
	    pthread_create(&st, NULL, udp_sender, &r))
		return die("thread", EAGAIN);
	usleep(WARMUP_US);
	e0 = udp_rcvbuf_errors(argv[1]);
	measure(&r, seconds, &rx, &tx, &secs);
	e1 = udp_rcvbuf_errors(argv[1]);
	atomic_store(&r.stop, true);
	pthread_join(st, NULL);
	pthread_join(rt, NULL);
	close(r.tx);
	close(r.rx);
	if (r.err)
		return die("send", r.err);
	printf("{\"pps\": %.0f, \"sent_pps\": %.0f, \"received\": %llu, \"sent\": %llu, \"rcvbuf_errors\": %lld, \"size\": %d}\n",
	       rx / secs, tx / secs, rx, tx, e0 >= 0 && e1 >= 0 ? e1 - e0 : -1,
	       size);
	return 0;
}

/* ---- offloads and devices ------------------------------------------------ */

static int ethtool_get(int fd, const char *dev, uint32_t cmd, bool *on)
{
	struct ethtool_value v = { .cmd = cmd };
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	ifr.ifr_data = (void *)&v;
	if (ioctl(fd, SIOCETHTOOL, &ifr) < 0)
		return -errno;
	*on = v.data != 0;
	return 0;
}

static int cmd_offload(char **argv)
{
	int fd = socket_in(argv[0], SOCK_DGRAM);
	bool csum = false, tso = false;
	int r;

	if (fd < 0)
		return die(argv[0], -fd);
	if ((r = ethtool_get(fd, argv[1], ETHTOOL_GTXCSUM, &csum)) < 0 ||
	    (r = ethtool_get(fd, argv[1], ETHTOOL_GTSO, &tso)) < 0)
		return die(argv[1], -r);
	close(fd);
	printf("{\"tx_csum\": \"%s\", \"tso\": \"%s\"}\n", csum ? "on" : "off",
	       tso ? "on" : "off");
	return 0;
}

static bool dev_up(int fd, const char *dev)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	return ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
}

static int cmd_tunnels(int argc, char **argv)
{
	size_t plen = strlen(argv[0]);
	unsigned nss = 0, complete = 0;
	struct dirent *e;
	DIR *d = opendir("/run/netns");

	if (!d)
		return die("/run/netns", errno);
	while ((e = readdir(d))) {
		bool all = true;
		int fd;

		if (strncmp(e->d_name, argv[0], plen) != 0)
			continue;
		nss++;
		fd = socket_in(e->d_name, SOCK_DGRAM);
		if (fd < 0) {
			fprintf(stderr, "traffic: %s: %s\n", e->d_name,
				strerror(-fd));
			continue;
		}
		for (int i = 1; i < argc && all; i++)
			all = dev_up(fd, argv[i]);
		close(fd);
		complete += all;
	}
	closedir(d);
	printf("{\"namespaces\": %u, \"complete\": %u, \"missing\": %u}\n", nss,
	       complete, nss - complete);
	return nss == complete ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 7 && strcmp(argv[1], "tcp") == 0)
		return cmd_tcp(argv + 2);
	if (argc >= 7 && argc <= 8 && strcmp(argv[1], "udp") == 0)
		return cmd_udp(argc - 2, argv + 2);
	if (argc == 4 && strcmp(argv[1], "offload") == 0)
		return cmd_offload(argv + 2);
	if (argc >= 4 && strcmp(argv[1], "tunnels") == 0)
		return cmd_tunnels(argc - 2, argv + 2);
	fprintf(stderr,
		"usage: traffic tcp SRC_NS DST_NS ADDR PORT SECONDS\n"
		"       traffic udp SRC_NS DST_NS ADDR PORT SECONDS [SIZE]\n"
		"       traffic offload NS DEV\n"
		"       traffic tunnels NS_PREFIX DEV...\n");
	return 2;
}
