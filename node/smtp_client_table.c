/*
 * Per-client records (node/smtp_client_table.h): a chained hash table of
 * fixed size. A record is expired when now >= its expiry (a new record
 * starts expired until its owner sets the expiry).
 */
#include "node/smtp_client_table.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SMTP_CLIENT_TABLE_BUCKETS 4096

struct smtp_client_entry {
	struct smtp_client_entry *next;
	struct cidr addr;
	uint64_t expires_ms;
	unsigned char value[];
};

struct smtp_client_table {
	size_t max, n, value_size;
	struct smtp_client_entry *buckets[SMTP_CLIENT_TABLE_BUCKETS];
};

uint64_t smtp_client_table_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct smtp_client_table *smtp_client_table_new(size_t max_entries, size_t value_size)
{
	struct smtp_client_table *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->max = max_entries;
	t->value_size = value_size;
	return t;
}

void smtp_client_table_clear(struct smtp_client_table *t)
{
	for (size_t i = 0; i < SMTP_CLIENT_TABLE_BUCKETS; i++) {
		struct smtp_client_entry *e = t->buckets[i];
		while (e != NULL) {
			struct smtp_client_entry *next = e->next;
			free(e);
			e = next;
		}
		t->buckets[i] = NULL;
	}
	t->n = 0;
}

void smtp_client_table_free(struct smtp_client_table **tp)
{
	struct smtp_client_table *t = *tp;
	if (t == NULL)
		return;
	smtp_client_table_clear(t);
	free(t);
	*tp = NULL;
}

/* FNV-1a over the family and the address bytes. */
static size_t smtp_client_hash(const struct cidr *a)
{
	uint32_t h = 2166136261u ^ (uint32_t)a->v6;
	for (size_t i = 0; i < sizeof(a->addr); i++)
		h = (h ^ a->addr[i]) * 16777619u;
	return h % SMTP_CLIENT_TABLE_BUCKETS;
}

static bool smtp_client_same(const struct cidr *a, const struct cidr *b)
{
	return a->v6 == b->v6 && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* Frees every expired record: the number freed. */
static size_t smtp_client_sweep(struct smtp_client_table *t, uint64_t now_ms)
{
	size_t freed = 0;
	for (size_t i = 0; i < SMTP_CLIENT_TABLE_BUCKETS; i++) {
		struct smtp_client_entry **pp = &t->buckets[i];
		while (*pp != NULL) {
			struct smtp_client_entry *e = *pp;
			if (now_ms >= e->expires_ms) {
				*pp = e->next;
				free(e);
				freed++;
			} else {
				pp = &e->next;
			}
		}
	}
	t->n -= freed;
	return freed;
}

void *smtp_client_table_get(struct smtp_client_table *t, const struct cidr *addr, uint64_t now_ms,
			    bool create, uint64_t **expires_ms_r)
{
	size_t h = smtp_client_hash(addr);
	struct smtp_client_entry *e;

	for (e = t->buckets[h]; e != NULL; e = e->next)
		if (smtp_client_same(&e->addr, addr))
			break;
	if (e != NULL && now_ms < e->expires_ms) {
		*expires_ms_r = &e->expires_ms;
		return e->value;
	}
	if (!create)
		return NULL;
	if (e == NULL) {
		if (t->n >= t->max && smtp_client_sweep(t, now_ms) == 0)
			return NULL;
		e = malloc(sizeof(*e) + t->value_size);
		if (e == NULL)
			return NULL;
		e->addr = *addr;
		e->next = t->buckets[h];
		t->buckets[h] = e;
		t->n++;
	}
	memset(e->value, 0, t->value_size);
	e->expires_ms = now_ms;
	*expires_ms_r = &e->expires_ms;
	return e->value;
}

size_t smtp_client_table_count(const struct smtp_client_table *t)
{
	return t->n;
}
