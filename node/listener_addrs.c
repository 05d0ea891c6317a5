/*
 * Live connections per client address, for the max_per_address limit.
 *
 * One table per listener, shared by all its workers: a mutex around a
 * chained hash table keyed by the address bytes. An entry exists only
 * while its address has live connections (it is removed at zero), so the
 * table's size is bounded by max_connections and by what is connected
 * now, never by history. Clients choose their addresses (an IPv6 /64 is
 * cheap), so bucket choice is keyed with a per-table random seed: they
 * cannot aim many addresses at one chain. The lock is held for a lookup
 * and an increment only.
 */
#include "node/listener_private.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/cidr.h"

#define ADDRS_INITIAL_BUCKETS 64

struct listener_addr_entry {
	struct listener_addr_entry *next;
	struct listener_addr_key key;
	unsigned count;
};

static uint64_t addrs_mix(uint64_t x)
{
	/* splitmix64 finalizer: a bijection that spreads every input bit */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static size_t addrs_bucket(const struct listener_addrs *t, const struct listener_addr_key *key)
{
	uint64_t w0, w1;
	memcpy(&w0, key->bytes, sizeof(w0));
	memcpy(&w1, key->bytes + 8, sizeof(w1));
	uint64_t h = addrs_mix(t->seed ^ key->family);
	h = addrs_mix(h ^ w0);
	h = addrs_mix(h ^ w1);
	return (size_t)(h & (t->n_buckets - 1));
}

static bool addrs_key_eq(const struct listener_addr_key *a, const struct listener_addr_key *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

int listener_addrs_init(struct listener_addrs *t)
{
	memset(t, 0, sizeof(*t));
	t->buckets = calloc(ADDRS_INITIAL_BUCKETS, sizeof(*t->buckets));
	if (t->buckets == NULL)
		return -1;
	t->n_buckets = ADDRS_INITIAL_BUCKETS;
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed)) {
		/* no entropy yet (early boot): still unpredictable enough from outside */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t->seed = addrs_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
				    (uint64_t)getpid() ^ (uint64_t)(uintptr_t)t);
	}
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

void listener_addrs_fini(struct listener_addrs *t)
{
	if (t->buckets == NULL)
		return;
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct listener_addr_entry *e = t->buckets[i];
		while (e != NULL) {
			struct listener_addr_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = NULL;
	pthread_mutex_destroy(&t->lock);
}

static struct listener_addr_entry **addrs_find(struct listener_addrs *t,
					       const struct listener_addr_key *key)
{
	struct listener_addr_entry **pp = &t->buckets[addrs_bucket(t, key)];
	while (*pp != NULL && !addrs_key_eq(&(*pp)->key, key))
		pp = &(*pp)->next;
	return pp;
}

/* Doubles the bucket array; on allocation failure the table just stays
 * denser, which costs time, not correctness. */
static void addrs_grow(struct listener_addrs *t)
{
	size_t n = t->n_buckets * 2;
	struct listener_addr_entry **b = calloc(n, sizeof(*b));
	if (b == NULL)
		return;
	struct listener_addr_entry **old = t->buckets;
	size_t old_n = t->n_buckets;
	t->buckets = b;
	t->n_buckets = n;
	for (size_t i = 0; i < old_n; i++) {
		struct listener_addr_entry *e = old[i];
		while (e != NULL) {
			struct listener_addr_entry *next = e->next;
			size_t k = addrs_bucket(t, &e->key);
			e->next = b[k];
			b[k] = e;
			e = next;
		}
	}
	free(old);
}

int listener_addrs_acquire(struct listener_addrs *t, const struct listener_addr_key *key,
			   unsigned max)
{
	int ret = 0;
	pthread_mutex_lock(&t->lock);
	struct listener_addr_entry **pp = addrs_find(t, key);
	if (*pp != NULL) {
		if (max != 0 && (*pp)->count >= max)
			ret = 1;
		else
			(*pp)->count++;
	} else {
		struct listener_addr_entry *e = calloc(1, sizeof(*e));
		if (e == NULL) {
			ret = -1;
		} else {
			e->key = *key;
			e->count = 1;
			*pp = e;
			if (++t->n_entries > t->n_buckets)
				addrs_grow(t);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

void listener_addrs_release(struct listener_addrs *t, const struct listener_addr_key *key)
{
	pthread_mutex_lock(&t->lock);
	struct listener_addr_entry **pp = addrs_find(t, key);
	struct listener_addr_entry *e = *pp;
	if (e != NULL && --e->count == 0) {
		*pp = e->next;
		free(e);
		t->n_entries--;
	}
	pthread_mutex_unlock(&t->lock);
}

unsigned listener_addrs_count(struct listener_addrs *t, const struct listener_addr_key *key)
{
	pthread_mutex_lock(&t->lock);
	struct listener_addr_entry *e = *addrs_find(t, key);
	unsigned n = e != NULL ? e->count : 0;
	pthread_mutex_unlock(&t->lock);
	return n;
}

size_t listener_addrs_size(struct listener_addrs *t)
{
	pthread_mutex_lock(&t->lock);
	size_t n = t->n_entries;
	pthread_mutex_unlock(&t->lock);
	return n;
}

int listener_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len,
				struct listener_addr_key *key_r, char *peer, size_t peer_size)
{
	char text[INET6_ADDRSTRLEN];

	memset(key_r, 0, sizeof(*key_r));
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		key_r->family = 4;
		memcpy(key_r->bytes, &sin->sin_addr, 4);
		inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
		snprintf(peer, peer_size, "%s:%u", text, ntohs(sin->sin_port));
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			key_r->family = 4;
			memcpy(key_r->bytes, &sin6->sin6_addr.s6_addr[12], 4);
			inet_ntop(AF_INET, key_r->bytes, text, sizeof(text));
			snprintf(peer, peer_size, "%s:%u", text, ntohs(sin6->sin6_port));
		} else {
			struct cidr addr = {.v6 = true, .prefix = 128}, client;
			memcpy(addr.addr, &sin6->sin6_addr, sizeof(addr.addr));
			cidr_client(&addr, &client);
			key_r->family = 6;
			memcpy(key_r->bytes, client.addr, sizeof(key_r->bytes));
			inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
			snprintf(peer, peer_size, "[%s]:%u", text, ntohs(sin6->sin6_port));
		}
		return 0;
	}
	snprintf(peer, peer_size, "unknown");
	return -1;
}
