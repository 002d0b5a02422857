/* The tunnel prober: see prober.h. */
#include "prober.h"

#include <errno.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "mt_log.h"
#include "mt_probewire.h"
#include "mt_time.h"
#include "mt_tunnel_health.h"
#include "probe_io.h"

#define MAX_CUSTOMER_TUNNELS 65535 /* the ICMP ident is the tunnel's index */
#define REOPEN_INTERVAL_MS 1000	   /* retry a namespace that is not there */
#define NETNS_CHECK_MS 1000	   /* is our namespace still the named one? */
#define TX_BATCH 64
#define RX_BATCH 64
#define COALESCE_MS 2 /* probes due within this are sent in one batch */
#define TICK_MS 5 /* the shortest sleep: replies are read in batches */
#define SOCK_SCAN_MS 100 /* how often sockets are opened or checked */

struct tunnel {
	struct customer *cust;
	char name[16];
	uint16_t index;	  /* in its customer: the probes' ICMP ident */
	uint32_t token;	  /* unique in the process: stale replies miss */
	bool probed;	  /* enabled in config */
	struct mt_tunnel_probe probe;
	struct mt_health_params params;
	struct mt_health h;
	bool seen_outcome;
	uint32_t seq;
	uint32_t current, snapshot, applied; /* penalties */
	uint64_t transitions;
	uint64_t transitions_to[3]; /* into healthy, degraded, down */
	uint64_t hist_real_ms[MT_HEALTH_HISTORY]; /* wall clock of h's history */
	size_t heap_pos; /* SIZE_MAX: not in the heap */
	uint64_t due_ms; /* cached compute_due(), while in the heap */
};

struct customer {
	char name[64];
	char netns[64];
	struct tunnel **tunnels;
	size_t n_tunnels;
	struct mt_probe_sock sock;
	bool sock_open;
	ino_t netns_ino;
	uint64_t next_open_ms, next_check_ms;
	bool changed; /* current != applied for some tunnel: tell the loop */
	bool mark;    /* sync sweep */
	bool dead;    /* removed: freed by the thread when no event can name it */
	struct customer *next_dead;
	/* probes built this round, sent in one sendmmsg */
	struct mt_probe_tx tx[TX_BATCH];
	uint8_t txbuf[TX_BATCH][MT_PROBE_MAX_LEN];
	struct tunnel *txt[TX_BATCH];
	size_t n_tx;
	bool tx_queued; /* on the prober's tx_pending list */
	struct customer *next_tx;
};

struct prober {
	const struct mt_metal *metal; /* the agent's, for its life */
	pthread_mutex_t lock;
	pthread_t thread;
	bool thread_started;
	bool stop;
	int epfd, wake_fd, changed_fd;
	struct customer **customers; /* sorted by name */
	size_t n_customers;
	struct tunnel **heap; /* min-heap by due time */
	size_t n_heap, cap_heap;
	struct customer *graveyard;
	struct customer *tx_pending; /* customers with probes to flush */
	uint64_t next_sock_scan_ms;
	uint64_t now_real_ns; /* CLOCK_REALTIME of this round: probes' send time */
	uint32_t next_token;
	uint64_t seed;
};

/* ---- the heap of due times ---- */

static uint64_t compute_due(const struct tunnel *t)
{
	uint64_t a = mt_health_next_probe_ms(&t->h);
	uint64_t b = mt_health_next_timeout_ms(&t->h);

	return a < b ? a : b;
}

/* The heap compares the cached due time: heap_fix() refreshes it for the
 * tunnel it is called for, the one whose state just changed. */
static uint64_t due(const struct tunnel *t)
{
	return t->due_ms;
}

static void heap_swap(struct prober *p, size_t i, size_t j)
{
	struct tunnel *x = p->heap[i];

	p->heap[i] = p->heap[j];
	p->heap[j] = x;
	p->heap[i]->heap_pos = i;
	p->heap[j]->heap_pos = j;
}

static void heap_fix(struct prober *p, size_t i)
{
	p->heap[i]->due_ms = compute_due(p->heap[i]);
	while (i > 0 && due(p->heap[(i - 1) / 2]) > due(p->heap[i])) {
		heap_swap(p, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < p->n_heap && due(p->heap[l]) < due(p->heap[m]))
			m = l;
		if (r < p->n_heap && due(p->heap[r]) < due(p->heap[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(p, i, m);
		i = m;
	}
}

static int heap_push(struct prober *p, struct tunnel *t)
{
	if (p->n_heap == p->cap_heap) {
		size_t cap = p->cap_heap ? 2 * p->cap_heap : 64;
		struct tunnel **v = realloc(p->heap, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->heap = v;
		p->cap_heap = cap;
	}
	p->heap[p->n_heap] = t;
	t->heap_pos = p->n_heap++;
	t->due_ms = compute_due(t);
	heap_fix(p, t->heap_pos);
	return 0;
}

static void heap_remove(struct prober *p, struct tunnel *t)
{
	size_t i = t->heap_pos;

	if (i == SIZE_MAX)
		return;
	t->heap_pos = SIZE_MAX;
	if (i != --p->n_heap) {
		p->heap[i] = p->heap[p->n_heap];
		p->heap[i]->heap_pos = i;
		heap_fix(p, i);
	}
}

/* ---- state changes ---- */

static const char *state_name(enum mt_health_state s)
{
	return mt_health_state_name(s);
}

/* After the state machine said the state changed (r == 1). */
static void transition(struct prober *p, struct tunnel *t, uint64_t now_ms)
{
	struct mt_health_transition tr;
	uint64_t one = 1;

	if (mt_health_history(&t->h, &tr, 1) == 1) {
		/* remember the wall clock of the newest history entry */
		memmove(t->hist_real_ms + 1, t->hist_real_ms,
			sizeof(t->hist_real_ms) - sizeof(t->hist_real_ms[0]));
		t->hist_real_ms[0] = mt_realtime_ms() - (now_ms - tr.at_ms);
		t->transitions_to[tr.to]++;
		mt_info("tunnel %s/%s: %s -> %s (loss %.3f%%, penalty %u)",
			t->cust->name, t->name, state_name(tr.from),
			state_name(tr.to),
			mt_health_loss_ppm(&t->h, now_ms) / 1e4,
			mt_health_penalty(&t->h));
	}
	t->transitions++;
	t->current = mt_health_penalty(&t->h);
	if (t->current != t->applied && !t->cust->changed) {
		t->cust->changed = true;
		if (write(p->changed_fd, &one, sizeof(one)) < 0) {
			/* the counter saturates: the loop is awake anyway */
		}
	}
}

static void outcome(struct prober *p, struct tunnel *t, int r, uint64_t now)
{
	t->seen_outcome = true;
	if (r == 1)
		transition(p, t, now);
	if (t->heap_pos != SIZE_MAX)
		heap_fix(p, t->heap_pos);
}

/* ---- sockets ---- */

static void close_sock(struct prober *p, struct customer *c)
{
	/* off the tx list: what it had queued is not sent */
	for (struct customer **pp = &p->tx_pending; *pp; pp = &(*pp)->next_tx)
		if (*pp == c) {
			*pp = c->next_tx;
			break;
		}
	c->tx_queued = false;
	c->next_tx = NULL;
	c->n_tx = 0;
	if (!c->sock_open)
		return;
	epoll_ctl(p->epfd, EPOLL_CTL_DEL, mt_probe_sock_fd(&c->sock), NULL);
	mt_probe_sock_close(&c->sock);
	c->sock_open = false;
}

/* The inode of the namespace mounted at /run/netns/NAME; 0 when there is
 * none (yet): a namespace being created is an empty placeholder file until
 * its bind mount is in place. */
static ino_t netns_ino(const char *netns)
{
	char path[128];
	struct statfs f;
	struct stat s;

	snprintf(path, sizeof(path), "/run/netns/%s", netns);
	if (statfs(path, &f) < 0 || f.f_type != NSFS_MAGIC)
		return 0;
	return stat(path, &s) == 0 ? s.st_ino : 0;
}

/* Opens the customer's sockets when its namespace exists; notices a
 * namespace deleted or re-created under our feet (our socket would keep
 * probing the old one). */
static void check_sock(struct prober *p, struct customer *c, uint64_t now)
{
	struct epoll_event ev = { .events = EPOLLIN };
	char err[256];
	ino_t ino;

	if (c->sock_open) {
		if (now < c->next_check_ms)
			return;
		c->next_check_ms = now + NETNS_CHECK_MS;
		if (netns_ino(c->netns) == c->netns_ino)
			return;
		mt_info("prober: namespace %s changed: reopening", c->netns);
		close_sock(p, c);
	}
	if (now < c->next_open_ms)
		return;
	c->next_open_ms = now + REOPEN_INTERVAL_MS;
	ino = netns_ino(c->netns);
	if (!ino)
		return; /* not created yet */
	if (mt_probe_sock_open(c->netns, &c->sock, err, sizeof(err)) < 0) {
		mt_warn("prober: %s", err);
		return;
	}
	ev.data.ptr = c;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, mt_probe_sock_fd(&c->sock),
		      &ev) < 0) {
		mt_warn("prober: epoll: %s", strerror(errno));
		mt_probe_sock_close(&c->sock);
		return;
	}
	c->sock_open = true;
	c->netns_ino = ino;
	c->next_check_ms = now + NETNS_CHECK_MS;
	for (size_t i = 0; i < c->n_tunnels; i++)
		if (c->tunnels[i]->probed && c->tunnels[i]->heap_pos == SIZE_MAX)
			heap_push(p, c->tunnels[i]);
}

/* ---- sending and receiving ---- */

static void flush_tx(struct prober *p, struct customer *c, uint64_t now)
{
	int r;

	if (!c->n_tx)
		return;
	r = mt_probe_sock_send(&c->sock, c->tx, c->n_tx);
	for (size_t i = 0; i < c->n_tx; i++) {
		struct tunnel *t = c->txt[i];

		/* a probe that could not leave is a failed probe */
		if (r < 0 || c->tx[i].err) {
			outcome(p, t,
				mt_health_probe_result(&t->h, now, c->tx[i].seq,
						       false, 0),
				now);
		}
	}
	c->n_tx = 0;
}

static void send_probe(struct prober *p, struct tunnel *t, uint64_t now)
{
	struct customer *c = t->cust;
	struct mt_probe_spec spec = {
		.request = t->probe.request,
		.outer_src = t->probe.outer_src,
		.outer_dst = t->probe.outer_dst,
		.outer_ttl = t->probe.outer_ttl,
		.has_key = t->probe.has_key,
		.key = t->probe.key,
		.inner_src = t->probe.inner_src,
		.inner_dst = t->probe.inner_dst,
		.ident = t->index,
		.token = t->token,
	};
	uint32_t seq = ++t->seq;
	size_t k;
	int len, r;

	if (c->n_tx == TX_BATCH)
		flush_tx(p, c, now);
	k = c->n_tx;
	len = mt_probe_build(&spec, seq, p->now_real_ns, c->txbuf[k],
			     sizeof(c->txbuf[k]));
	r = mt_health_probe_sent(&t->h, now, seq);
	if (len < 0) { /* cannot happen with a validated config */
		outcome(p, t, mt_health_probe_result(&t->h, now, seq, false, 0),
			now);
		return;
	}
	c->tx[k] = (struct mt_probe_tx){ .buf = c->txbuf[k],
					 .len = (size_t)len,
					 .dst = t->probe.outer_dst,
					 .seq = seq };
	c->txt[k] = t;
	c->n_tx++;
	if (!c->tx_queued) {
		c->tx_queued = true;
		c->next_tx = p->tx_pending;
		p->tx_pending = c;
	}
	outcome(p, t, r, now);
}

static struct tunnel *find_reply_tunnel(struct customer *c,
					const struct mt_probe_echo *e)
{
	struct tunnel *t;

	if (e->ident >= c->n_tunnels)
		return NULL;
	t = c->tunnels[e->ident];
	return t->token == e->token && t->probed ? t : NULL;
}

static void receive(struct prober *p, struct customer *c)
{
	struct mt_probe_rx rx[RX_BATCH];
	int n;

	while (c->sock_open &&
	       (n = mt_probe_sock_recv(&c->sock, rx, RX_BATCH)) > 0) {
		uint64_t now = mt_monotonic_ms();

		for (int i = 0; i < n; i++) {
			struct tunnel *t = find_reply_tunnel(c, &rx[i].echo);
			uint64_t rtt_ns;
			int r;

			if (!t)
				continue; /* a tunnel that is gone */
			rtt_ns = rx[i].rx_ns > rx[i].echo.sent_ns ?
					 rx[i].rx_ns - rx[i].echo.sent_ns :
					 0;
			r = mt_health_probe_result(&t->h, now, rx[i].echo.seq,
						   true,
						   (uint32_t)(rtt_ns / 1000));
			if (r == -ENOENT)
				continue; /* after its timeout: counted lost */
			outcome(p, t, r, now);
		}
		if (n < RX_BATCH)
			break;
	}
}

/* Sends the due probes and times out the lost ones; returns the next due
 * time. A customer whose namespace is not there (yet) is not probed: its
 * tunnels leave the heap until its sockets open, so a cold start or a
 * namespace being re-created does not count as loss. */
static uint64_t run_due(struct prober *p, uint64_t now)
{
	uint64_t horizon = now + COALESCE_MS;
	size_t budget = 4 * p->n_heap + 64; /* never spin */
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	p->now_real_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;

	/* sockets: at most every SOCK_SCAN_MS, not on every wakeup */
	if (now >= p->next_sock_scan_ms) {
		p->next_sock_scan_ms = now + SOCK_SCAN_MS;
		for (size_t i = 0; i < p->n_customers; i++)
			check_sock(p, p->customers[i], now);
	}
	while (p->n_heap && due(p->heap[0]) <= horizon && budget--) {
		struct tunnel *t = p->heap[0];

		if (!t->cust->sock_open) {
			heap_remove(p, t);
			continue;
		}
		outcome(p, t, mt_health_expire(&t->h, now), now);
		if (mt_health_next_probe_ms(&t->h) <= horizon)
			send_probe(p, t, now);
	}
	while (p->tx_pending) {
		struct customer *c = p->tx_pending;

		p->tx_pending = c->next_tx;
		c->next_tx = NULL;
		c->tx_queued = false;
		flush_tx(p, c, now);
	}
	return p->n_heap ? due(p->heap[0]) : now + REOPEN_INTERVAL_MS;
}

static void bury(struct prober *p)
{
	while (p->graveyard) {
		struct customer *c = p->graveyard;

		p->graveyard = c->next_dead;
		free(c);
	}
}

/* Reads every socket that has replies. Before run_due() expires anything:
 * a reply that arrived before its probe timed out counts as a success
 * even when the thread was asleep (its RTT is the kernel's receive time
 * minus the send time either way). */
static void drain(struct prober *p)
{
	struct epoll_event ev[64];
	int n;

	do {
		n = epoll_wait(p->epfd, ev, 64, 0);
		for (int i = 0; i < n; i++) {
			struct customer *c = ev[i].data.ptr;

			if (c && !c->dead)
				receive(p, c);
		}
	} while (n == 64);
}

/* The thread sleeps on wake_fd only, at least TICK_MS and at most until
 * the next probe or timeout is due, then drains the sockets and sends:
 * at 50,000 probes/s that is 200 wakeups/s, not one per reply. */
static void *prober_main(void *arg)
{
	struct prober *p = arg;
	struct pollfd wfd = { .fd = p->wake_fd, .events = POLLIN };

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		uint64_t now, next;
		int timeout;

		bury(p); /* no event of ours names them any more */
		drain(p);
		now = mt_monotonic_ms();
		next = run_due(p, now);
		if (next > now + REOPEN_INTERVAL_MS)
			next = now + REOPEN_INTERVAL_MS;
		timeout = next > now + TICK_MS ? (int)(next - now) : TICK_MS;
		pthread_mutex_unlock(&p->lock);
		if (poll(&wfd, 1, timeout) > 0) {
			uint64_t x;

			if (read(p->wake_fd, &x, sizeof(x)) < 0) {
				/* spurious: nothing to drain */
			}
		}
		pthread_mutex_lock(&p->lock);
	}
	bury(p);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void wake(struct prober *p)
{
	uint64_t one = 1;

	if (write(p->wake_fd, &one, sizeof(one)) < 0) {
		/* saturated: the thread wakes anyway */
	}
}

/* ---- the set of tunnels ---- */

static int cust_cmp(const void *a, const void *b)
{
	return strcmp((*(struct customer *const *)a)->name,
		      (*(struct customer *const *)b)->name);
}

static struct customer *find_customer(struct prober *p, const char *name)
{
	struct customer key, *k = &key, **hit;

	snprintf(key.name, sizeof(key.name), "%s", name);
	hit = bsearch(&k, p->customers, p->n_customers, sizeof(*p->customers),
		      cust_cmp);
	return hit ? *hit : NULL;
}

static struct tunnel *find_tunnel(struct customer *c, const char *name)
{
	for (size_t i = 0; c && i < c->n_tunnels; i++)
		if (!strcmp(c->tunnels[i]->name, name))
			return c->tunnels[i];
	return NULL;
}

static void free_tunnels(struct prober *p, struct tunnel **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		heap_remove(p, v[i]);
		free(v[i]);
	}
	free(v);
}

static uint64_t fnv(const char *a, const char *b)
{
	uint64_t h = 1469598103934665603ull;

	for (; *a; a++)
		h = (h ^ (uint8_t)*a) * 1099511628211ull;
	h = (h ^ '/') * 1099511628211ull;
	for (; *b; b++)
		h = (h ^ (uint8_t)*b) * 1099511628211ull;
	return h;
}

/* Gives customer c the tunnels of cfg, keeping the state of those whose
 * probe config did not change. 0 or -ENOMEM (c unchanged). */
static int update_customer(struct prober *p, struct customer *c,
			   const Mt__Config__Customer *cfg, uint64_t now)
{
	size_t n = cfg->n_tunnels < MAX_CUSTOMER_TUNNELS ? cfg->n_tunnels :
							    MAX_CUSTOMER_TUNNELS;
	struct tunnel **v = calloc(n + 1, sizeof(*v));
	bool changed = false;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const Mt__Config__Tunnel *tc = cfg->tunnels[i];
		struct tunnel *t = calloc(1, sizeof(*t)), *was;
		char err[256];

		if (!t) {
			free_tunnels(p, v, i);
			return -ENOMEM;
		}
		t->cust = c;
		t->heap_pos = SIZE_MAX;
		snprintf(t->name, sizeof(t->name), "%s", tc->name);
		t->index = (uint16_t)i;
		if (mt_tunnel_probe_config(tc, &t->probe, err, sizeof(err)) < 0 ||
		    mt_tunnel_health_params(tc, &t->params, err, sizeof(err)) <
			    0) {
			/* validated before: cannot happen; never probe it */
			mt_warn("prober: %s/%s: %s", c->name, t->name, err);
			t->probe.enabled = false;
		}
		t->probed = t->probe.enabled;
		was = find_tunnel(c, t->name);
		if (was && was->probed == t->probed &&
		    !memcmp(&was->probe, &t->probe, sizeof(t->probe)) &&
		    !memcmp(&was->params, &t->params, sizeof(t->params))) {
			/* unchanged: the state goes on */
			t->h = was->h;
			t->seen_outcome = was->seen_outcome;
			t->seq = was->seq;
			t->current = was->current;
			t->transitions = was->transitions;
			memcpy(t->transitions_to, was->transitions_to,
			       sizeof(t->transitions_to));
			memcpy(t->hist_real_ms, was->hist_real_ms,
			       sizeof(t->hist_real_ms));
		} else {
			mt_health_init(&t->h, &t->params,
				       fnv(c->name, t->name) ^ p->seed, now,
				       MT_HEALTH_HEALTHY);
			t->current = 0;
		}
		/* replies to the old generation's probes miss */
		t->token = was && t->h.probes_sent ? was->token : ++p->next_token;
		/* the kernel keeps what it has until the plan says otherwise */
		t->applied = was ? was->applied : 0;
		t->snapshot = was ? was->snapshot : 0;
		if (!t->probed)
			t->current = 0;
		changed |= t->current != t->applied;
		v[i] = t;
	}
	free_tunnels(p, c->tunnels, c->n_tunnels);
	c->tunnels = v;
	c->n_tunnels = n;
	if (changed)
		c->changed = true;
	return 0;
}

static void notify_changed(struct prober *p)
{
	uint64_t one = 1;

	if (write(p->changed_fd, &one, sizeof(one)) < 0) {
		/* saturated: readable anyway */
	}
}

/* Under the lock. */
static int set_customer(struct prober *p, const Mt__Config__Customer *cfg,
			uint64_t now)
{
	struct customer *c = find_customer(p, cfg->name);
	bool fresh = !c;

	if (fresh) {
		struct customer **v = realloc(p->customers,
					      (p->n_customers + 1) * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->customers = v;
		c = calloc(1, sizeof(*c));
		if (!c)
			return -ENOMEM;
		snprintf(c->name, sizeof(c->name), "%s", cfg->name);
		if (mt_metal_ifname(p->metal, cfg->name, c->netns,
				    sizeof(c->netns)) < 0) {
			free(c);
			return -EINVAL;
		}
	}
	if (update_customer(p, c, cfg, now) < 0) {
		if (fresh)
			free(c);
		return -ENOMEM;
	}
	if (fresh) {
		size_t i = p->n_customers;

		while (i > 0 && strcmp(p->customers[i - 1]->name, c->name) > 0) {
			p->customers[i] = p->customers[i - 1];
			i--;
		}
		p->customers[i] = c;
		p->n_customers++;
	}
	for (size_t j = 0; j < c->n_tunnels; j++)
		if (c->tunnels[j]->probed)
			heap_push(p, c->tunnels[j]);
	if (c->changed)
		notify_changed(p);
	return 0;
}

/* Under the lock: its sockets close now, the memory goes once the thread
 * holds no event naming it. */
static void remove_customer(struct prober *p, size_t i)
{
	struct customer *old = p->customers[i];

	mt_info("prober: customer %s: no longer probed", old->name);
	close_sock(p, old);
	free_tunnels(p, old->tunnels, old->n_tunnels);
	old->tunnels = NULL;
	old->n_tunnels = 0;
	old->dead = true;
	old->next_dead = p->graveyard;
	p->graveyard = old;
	memmove(p->customers + i, p->customers + i + 1,
		(p->n_customers - i - 1) * sizeof(*p->customers));
	p->n_customers--;
}

int prober_set_customer(struct prober *p, const Mt__Config__Customer *cfg)
{
	int r;

	pthread_mutex_lock(&p->lock);
	r = set_customer(p, cfg, mt_monotonic_ms());
	pthread_mutex_unlock(&p->lock);
	wake(p);
	return r;
}

void prober_remove_customer(struct prober *p, const char *name)
{
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n_customers; i++)
		if (!strcmp(p->customers[i]->name, name)) {
			remove_customer(p, i);
			break;
		}
	pthread_mutex_unlock(&p->lock);
}

int prober_sync(struct prober *p, Mt__Config__Customer *const *cs, size_t n)
{
	uint64_t now = mt_monotonic_ms();
	int r = 0;

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n_customers; i++)
		p->customers[i]->mark = false;
	for (size_t i = 0; i < n; i++) {
		struct customer *c;

		if (set_customer(p, cs[i], now) < 0) {
			r = -ENOMEM;
			continue;
		}
		c = find_customer(p, cs[i]->name);
		if (c)
			c->mark = true;
	}
	for (size_t i = p->n_customers; i-- > 0;)
		if (!p->customers[i]->mark)
			remove_customer(p, i);
	pthread_mutex_unlock(&p->lock);
	wake(p);
	return r;
}

void prober_seed(struct prober *p, const char *customer, const char *tunnel,
		 uint32_t penalty)
{
	struct tunnel *t;

	pthread_mutex_lock(&p->lock);
	t = find_tunnel(find_customer(p, customer), tunnel);
	if (t && t->probed && !t->seen_outcome) {
		enum mt_health_state s =
			penalty >= t->params.down_penalty ? MT_HEALTH_DOWN :
			penalty >= t->params.degraded_penalty ?
							    MT_HEALTH_DEGRADED :
							    MT_HEALTH_HEALTHY;
		uint64_t now = mt_monotonic_ms();

		if (s != MT_HEALTH_HEALTHY) {
			mt_info("prober: tunnel %s/%s starts %s (its routes carry penalty %u)",
				customer, tunnel, state_name(s), penalty);
			mt_health_init(&t->h, &t->params,
				       fnv(customer, tunnel) ^ p->seed, now, s);
			if (t->heap_pos != SIZE_MAX)
				heap_fix(p, t->heap_pos);
		}
		t->current = mt_health_penalty(&t->h);
		t->applied = t->snapshot = penalty;
		t->cust->changed = t->current != t->applied;
	}
	pthread_mutex_unlock(&p->lock);
}

/* ---- the main loop's side ---- */

int prober_fd(const struct prober *p)
{
	return p->changed_fd;
}

char **prober_take_changed(struct prober *p, size_t *n)
{
	char **v;
	uint64_t x;

	*n = 0;
	if (read(p->changed_fd, &x, sizeof(x)) < 0) {
		/* nothing pending: fine */
	}
	pthread_mutex_lock(&p->lock);
	v = calloc(p->n_customers + 1, sizeof(*v));
	for (size_t i = 0; v && i < p->n_customers; i++) {
		struct customer *c = p->customers[i];

		if (!c->changed)
			continue;
		c->changed = false;
		v[*n] = strdup(c->name);
		if (v[*n])
			(*n)++;
	}
	pthread_mutex_unlock(&p->lock);
	return v;
}

static void snapshot_one(struct customer *c)
{
	for (size_t j = 0; j < c->n_tunnels; j++)
		c->tunnels[j]->snapshot = c->tunnels[j]->current;
}

void prober_snapshot(struct prober *p, const char *customer)
{
	pthread_mutex_lock(&p->lock);
	if (customer) {
		struct customer *c = find_customer(p, customer);

		if (c)
			snapshot_one(c);
	} else {
		for (size_t i = 0; i < p->n_customers; i++)
			snapshot_one(p->customers[i]);
	}
	pthread_mutex_unlock(&p->lock);
}

static void commit_one(struct prober *p, struct customer *c)
{
	bool differs = false;

	for (size_t j = 0; j < c->n_tunnels; j++) {
		struct tunnel *t = c->tunnels[j];

		t->applied = t->snapshot;
		differs |= t->current != t->applied;
	}
	/* the state moved on while the plan was out: go again */
	if (differs && !c->changed) {
		c->changed = true;
		notify_changed(p);
	}
}

void prober_commit(struct prober *p, const char *customer)
{
	pthread_mutex_lock(&p->lock);
	if (customer) {
		struct customer *c = find_customer(p, customer);

		if (c)
			commit_one(p, c);
	} else {
		for (size_t i = 0; i < p->n_customers; i++)
			commit_one(p, p->customers[i]);
	}
	pthread_mutex_unlock(&p->lock);
}

/* Called by the desired-state build in the main loop, which is the only
 * writer of snapshot and applied, and of the tunnel set: no lock. */
static uint32_t snapshot_fn(void *ctx, const char *customer,
			    const char *tunnel)
{
	struct tunnel *t = find_tunnel(find_customer(ctx, customer), tunnel);

	return t ? t->snapshot : 0;
}

static uint32_t applied_fn(void *ctx, const char *customer,
			   const char *tunnel)
{
	struct tunnel *t = find_tunnel(find_customer(ctx, customer), tunnel);

	return t ? t->applied : 0;
}

struct mt_desired_penalties prober_snapshot_penalties(struct prober *p)
{
	return (struct mt_desired_penalties){ snapshot_fn, p };
}

struct mt_desired_penalties prober_applied_penalties(struct prober *p)
{
	return (struct mt_desired_penalties){ applied_fn, p };
}

Mt__Rpc__TunnelHealth *prober_health(struct prober *p, const char *customer,
				     const char *tunnel)
{
	Mt__Rpc__TunnelHealth *out = NULL;
	struct mt_health_transition hist[MT_HEALTH_HISTORY];
	struct tunnel *t;
	uint64_t now = mt_monotonic_ms(), real = mt_realtime_ms();

	pthread_mutex_lock(&p->lock);
	t = find_tunnel(find_customer(p, customer), tunnel);
	if (!t)
		goto out;
	out = calloc(1, sizeof(*out));
	if (!out)
		goto out;
	mt__rpc__tunnel_health__init(out);
	out->type = strdup(t->probe.request ? "request" : "reply");
	out->direction = strdup(t->probe.bidirectional ? "bidirectional" :
							  "unidirectional");
	out->interval_ms = t->params.interval_ms[t->params.rate];
	out->penalty = t->applied;
	out->transitions = t->transitions;
	if (!t->probed) {
		out->state = strdup("disabled");
		goto out;
	}
	out->state = strdup(state_name(mt_health_state(&t->h)));
	out->loss_ppm = mt_health_loss_ppm(&t->h, now);
	out->rtt_us = mt_health_last_rtt_us(&t->h);
	out->srtt_us = mt_health_srtt_us(&t->h);
	out->since_ms = real - (now - mt_health_since_ms(&t->h));
	out->probes_sent = t->h.probes_sent;
	out->probes_ok = t->h.probes_ok;
	out->probes_failed = t->h.probes_failed;
	{
		size_t n = mt_health_history(&t->h, hist, MT_HEALTH_HISTORY);

		out->history = calloc(n + 1, sizeof(*out->history));
		for (size_t i = 0; out->history && i < n; i++) {
			Mt__Rpc__HealthTransition *h = calloc(1, sizeof(*h));

			if (!h)
				break;
			mt__rpc__health_transition__init(h);
			h->at_ms = real - (now - hist[i].at_ms);
			h->from = strdup(state_name(hist[i].from));
			h->to = strdup(state_name(hist[i].to));
			out->history[out->n_history++] = h;
		}
	}
out:
	pthread_mutex_unlock(&p->lock);
	return out;
}

void prober_foreach(struct prober *p,
		    void (*fn)(const struct prober_tunnel_view *v, void *ctx),
		    void *ctx)
{
	uint64_t now = mt_monotonic_ms();

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n_customers; i++) {
		const struct customer *c = p->customers[i];

		for (size_t j = 0; j < c->n_tunnels; j++) {
			const struct tunnel *t = c->tunnels[j];
			struct prober_tunnel_view v = {
				.customer = c->name,
				.tunnel = t->name,
				.probed = t->probed,
				.state = mt_health_state(&t->h),
				.penalty = t->applied,
				.loss_ppm = mt_health_loss_ppm(&t->h, now),
				.rtt_us = mt_health_last_rtt_us(&t->h),
				.sent = t->h.probes_sent,
				.ok = t->h.probes_ok,
				.failed = t->h.probes_failed,
			};

			memcpy(v.transitions_to, t->transitions_to,
			       sizeof(v.transitions_to));
			fn(&v, ctx);
		}
	}
	pthread_mutex_unlock(&p->lock);
}

/* ---- life cycle ---- */

int prober_new(const struct mt_metal *m, struct prober **out)
{
	struct prober *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->changed_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->seed = mt_monotonic_us();
	if (p->epfd < 0 || p->wake_fd < 0 || p->changed_fd < 0) {
		r = -errno;
		goto fail;
	}
	p->metal = m;
	r = -pthread_create(&p->thread, NULL, prober_main, p);
	if (r < 0)
		goto fail;
	p->thread_started = true;
	/* named, so its CPU can be read apart (tests/bench/health) */
	pthread_setname_np(p->thread, "mt-prober");
	*out = p;
	return 0;
fail:
	prober_free(p);
	return r;
}

void prober_free(struct prober *p)
{
	if (!p)
		return;
	if (p->thread_started) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_mutex_unlock(&p->lock);
		wake(p);
		pthread_join(p->thread, NULL);
	}
	for (size_t i = 0; i < p->n_customers; i++) {
		struct customer *c = p->customers[i];

		close_sock(p, c);
		free_tunnels(p, c->tunnels, c->n_tunnels);
		free(c);
	}
	free(p->customers);
	free(p->heap);
	if (p->epfd >= 0)
		close(p->epfd);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	if (p->changed_fd >= 0)
		close(p->changed_fd);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
