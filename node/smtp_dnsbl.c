/*
 * DNSBL lookups (node/smtp_dnsbl.h). The only file that uses evdns.
 *
 * Lifetimes: a query ends for its owner at the verdict (the callback) or
 * at smtp_dnsbl_cancel, but its memory stays until evdns has called back
 * for every zone request it started: libevent reports a cancelled
 * request later, with DNS_ERR_CANCEL, from the loop. So `cb` (NULL once
 * the owner is gone) and `pending` (callbacks still to come) decide
 * separately, and the last of the two frees.
 */
#include "node/smtp_dnsbl.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/log.h"
#include "node/smtp_client_table.h"

#define SMTP_DNSBL_TTL_MIN 10
#define SMTP_DNSBL_TTL_MAX 86400

struct smtp_dnsbl_loop {
	struct event_base *base;
	struct evdns_base *dns;
};

struct smtp_dnsbl {
	pthread_mutex_t lock; /* loops and cache */
	char resolver[80];
	struct smtp_dnsbl_loop *loops;
	size_t nloops;
	struct smtp_client_table *cache;
};

struct smtp_dnsbl_verdict {
	bool listed;
	char zone[NODE_CONFIG_DOMAIN_SIZE];
};

struct smtp_dnsbl_zone_req {
	struct smtp_dnsbl_query *q;
	struct evdns_request *req; /* NULL once evdns called back */
	size_t zone;		   /* index in cfg->dnsbl */
	char name[NODE_CONFIG_DOMAIN_SIZE + 64];
};

struct smtp_dnsbl_query {
	struct smtp_dnsbl *d;
	struct evdns_base *dns;
	struct event *timer;
	const struct node_config_smtp *cfg; /* only while cb != NULL */
	struct cidr addr;
	char addr_text[CIDR_TEXT_MAX];
	unsigned long long conn_id;
	smtp_dnsbl_cb *cb; /* NULL once the owner has its verdict or cancelled */
	void *ctx;
	size_t nzones, answered, failed;
	unsigned pending; /* evdns callbacks still to come */
	struct smtp_dnsbl_zone_req zones[NODE_CONFIG_DNSBL_MAX];
};

struct smtp_dnsbl *smtp_dnsbl_new(const char *resolver)
{
	struct smtp_dnsbl *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->cache = smtp_client_table_new(SMTP_DNSBL_CACHE_MAX, sizeof(struct smtp_dnsbl_verdict));
	if (d->cache == NULL) {
		free(d);
		return NULL;
	}
	snprintf(d->resolver, sizeof(d->resolver), "%s", resolver);
	pthread_mutex_init(&d->lock, NULL);
	return d;
}

void smtp_dnsbl_free(struct smtp_dnsbl **dp)
{
	struct smtp_dnsbl *d = *dp;
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nloops; i++) {
		evdns_base_free(d->loops[i].dns, 1);
		/* the failed and cancelled requests' callbacks, which free
		 * their queries */
		event_base_loop(d->loops[i].base, EVLOOP_NONBLOCK);
	}
	free(d->loops);
	smtp_client_table_free(&d->cache);
	pthread_mutex_destroy(&d->lock);
	free(d);
	*dp = NULL;
}

void smtp_dnsbl_forget(struct smtp_dnsbl *d)
{
	pthread_mutex_lock(&d->lock);
	smtp_client_table_clear(d->cache);
	pthread_mutex_unlock(&d->lock);
}

/* This loop's resolver, made on first use (on the loop's own thread). */
static struct evdns_base *smtp_dnsbl_resolver(struct smtp_dnsbl *d, struct event_base *base,
					      unsigned timeout_sec)
{
	struct evdns_base *dns = NULL;

	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nloops && dns == NULL; i++)
		if (d->loops[i].base == base)
			dns = d->loops[i].dns;
	pthread_mutex_unlock(&d->lock);
	if (dns != NULL)
		return dns;
	dns = evdns_base_new(base, 0);
	if (dns == NULL)
		return NULL;
	int ret = d->resolver[0] != '\0' ? evdns_base_nameserver_ip_add(dns, d->resolver)
					 : evdns_base_resolv_conf_parse(dns, DNS_OPTION_NAMESERVERS,
									"/etc/resolv.conf");
	if (ret != 0)
		log_warning("smtp",
			    "dnsbl: cannot use the resolver %s (error %d); lookups will fail",
			    d->resolver[0] != '\0' ? d->resolver : "of /etc/resolv.conf", ret);
	char t[16];
	snprintf(t, sizeof(t), "%u", timeout_sec);
	evdns_base_set_option(dns, "timeout:", t);
	evdns_base_set_option(dns, "attempts:", "2");
	pthread_mutex_lock(&d->lock);
	struct smtp_dnsbl_loop *loops = realloc(d->loops, (d->nloops + 1) * sizeof(*loops));
	if (loops == NULL) {
		pthread_mutex_unlock(&d->lock);
		evdns_base_free(dns, 0);
		return NULL;
	}
	d->loops = loops;
	d->loops[d->nloops++] = (struct smtp_dnsbl_loop){base, dns};
	pthread_mutex_unlock(&d->lock);
	return dns;
}

static void smtp_dnsbl_query_free(struct smtp_dnsbl_query *q)
{
	if (q->timer != NULL)
		event_free(q->timer);
	free(q);
}

/* Cancels the zone requests still in flight; each calls back later. */
static void smtp_dnsbl_stop(struct smtp_dnsbl_query *q)
{
	q->cb = NULL;
	q->cfg = NULL;
	if (q->timer != NULL)
		event_del(q->timer);
	for (size_t i = 0; i < q->nzones; i++)
		if (q->zones[i].req != NULL)
			evdns_cancel_request(q->dns, q->zones[i].req);
}

static void smtp_dnsbl_cache_put(struct smtp_dnsbl *d, const struct cidr *addr, const char *zone,
				 uint64_t ttl_sec)
{
	uint64_t now = smtp_client_table_now_ms(), *expires;

	pthread_mutex_lock(&d->lock);
	struct smtp_dnsbl_verdict *v = smtp_client_table_get(d->cache, addr, now, true, &expires);
	if (v != NULL) {
		v->listed = zone != NULL;
		snprintf(v->zone, sizeof(v->zone), "%s", zone != NULL ? zone : "");
		*expires = now + ttl_sec * 1000;
	}
	pthread_mutex_unlock(&d->lock);
}

/* Gives the owner its verdict (zone NULL: not listed). */
static void smtp_dnsbl_finish(struct smtp_dnsbl_query *q, const char *zone)
{
	smtp_dnsbl_cb *cb = q->cb;
	void *ctx = q->ctx;
	char z[NODE_CONFIG_DOMAIN_SIZE];

	snprintf(z, sizeof(z), "%s", zone != NULL ? zone : "");
	smtp_dnsbl_stop(q);
	cb(zone != NULL ? z : NULL, ctx);
}

static bool smtp_dnsbl_listed(int result, char type, int count, const void *addresses)
{
	const uint32_t *a = addresses;
	if (result != DNS_ERR_NONE || type != DNS_IPv4_A)
		return false;
	for (int i = 0; i < count; i++)
		if ((ntohl(a[i]) >> 24) == 127)
			return true;
	return false;
}

static void smtp_dnsbl_answer(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	struct smtp_dnsbl_zone_req *zr = arg;
	struct smtp_dnsbl_query *q = zr->q;
	zr->req = NULL;
	q->pending--;
	if (q->cb != NULL) {
		const char *zname = q->cfg->dnsbl[zr->zone];
		q->answered++;
		if (smtp_dnsbl_listed(result, type, count, addresses)) {
			uint64_t t = ttl < SMTP_DNSBL_TTL_MIN	? SMTP_DNSBL_TTL_MIN
				     : ttl > SMTP_DNSBL_TTL_MAX ? SMTP_DNSBL_TTL_MAX
								: (uint64_t)ttl;
			smtp_dnsbl_cache_put(q->d, &q->addr, zname, t);
			smtp_dnsbl_finish(q, zname);
		} else {
			if (result != DNS_ERR_NONE && result != DNS_ERR_NOTEXIST &&
			    result != DNS_ERR_NODATA) {
				q->failed++;
				log_warning(
				    "smtp",
				    "conn=%llu dnsbl lookup %s failed (%s): taken as not listed",
				    q->conn_id, zr->name, evdns_err_to_string(result));
			}
			if (q->answered == q->nzones) {
				if (q->failed == 0)
					smtp_dnsbl_cache_put(q->d, &q->addr, NULL,
							     SMTP_DNSBL_NEGATIVE_TTL);
				smtp_dnsbl_finish(q, NULL);
			}
		}
	}
	if (q->cb == NULL && q->pending == 0)
		smtp_dnsbl_query_free(q);
}

static void smtp_dnsbl_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_dnsbl_query *q = arg;
	(void)fd;
	(void)what;

	log_warning("smtp",
		    "conn=%llu dnsbl lookups of %s timed out after %u s (%zu of %zu zones "
		    "answered): taken as not listed",
		    q->conn_id, q->addr_text, q->cfg->dnsbl_timeout, q->answered, q->nzones);
	smtp_dnsbl_finish(q, NULL);
	if (q->pending == 0)
		smtp_dnsbl_query_free(q);
}

int smtp_dnsbl_check(struct smtp_dnsbl *d, struct event_base *base, const struct cidr *addr,
		     const struct node_config_smtp *cfg, unsigned long long conn_id,
		     smtp_dnsbl_cb *cb, void *ctx, struct smtp_dnsbl_query **q_r, bool *listed_r,
		     char *zone_r)
{
	uint64_t *expires;
	char rev[64];

	*q_r = NULL;
	pthread_mutex_lock(&d->lock);
	const struct smtp_dnsbl_verdict *v =
	    smtp_client_table_get(d->cache, addr, smtp_client_table_now_ms(), false, &expires);
	if (v != NULL) {
		*listed_r = v->listed;
		snprintf(zone_r, NODE_CONFIG_DOMAIN_SIZE, "%s", v->zone);
		pthread_mutex_unlock(&d->lock);
		return 1;
	}
	pthread_mutex_unlock(&d->lock);

	struct evdns_base *dns = smtp_dnsbl_resolver(d, base, cfg->dnsbl_timeout);
	struct smtp_dnsbl_query *q = calloc(1, sizeof(*q));
	if (dns == NULL || q == NULL || cidr_reverse_name(addr, rev, sizeof(rev)) < 0) {
		log_error("smtp", "conn=%llu dnsbl: out of memory starting lookups", conn_id);
		free(q);
		return -1;
	}
	*q = (struct smtp_dnsbl_query){.d = d,
				       .dns = dns,
				       .cfg = cfg,
				       .addr = *addr,
				       .conn_id = conn_id,
				       .cb = cb,
				       .ctx = ctx};
	cidr_format(addr, q->addr_text, sizeof(q->addr_text));
	q->addr_text[strcspn(q->addr_text, "/")] = '\0';
	q->timer = evtimer_new(base, smtp_dnsbl_timeout, q);
	struct timeval tv = {.tv_sec = cfg->dnsbl_timeout};
	if (q->timer == NULL || evtimer_add(q->timer, &tv) < 0) {
		log_error("smtp", "conn=%llu dnsbl: out of memory starting lookups", conn_id);
		smtp_dnsbl_query_free(q);
		return -1;
	}
	for (size_t i = 0; i < cfg->n_dnsbl; i++) {
		struct smtp_dnsbl_zone_req *zr = &q->zones[q->nzones];
		zr->q = q;
		zr->zone = i;
		snprintf(zr->name, sizeof(zr->name), "%s.%s", rev, cfg->dnsbl[i]);
		q->pending++;
		zr->req = evdns_base_resolve_ipv4(dns, zr->name, DNS_QUERY_NO_SEARCH,
						  smtp_dnsbl_answer, zr);
		if (zr->req == NULL) {
			q->pending--;
			log_warning("smtp",
				    "conn=%llu dnsbl lookup %s could not start: taken as "
				    "not listed",
				    conn_id, zr->name);
			continue;
		}
		q->nzones++;
	}
	if (q->nzones == 0) {
		smtp_dnsbl_query_free(q);
		return -1;
	}
	*q_r = q;
	return 0;
}

void smtp_dnsbl_cancel(struct smtp_dnsbl_query **qp)
{
	struct smtp_dnsbl_query *q = *qp;
	if (q == NULL)
		return;
	*qp = NULL;
	smtp_dnsbl_stop(q);
	if (q->pending == 0)
		smtp_dnsbl_query_free(q);
}
