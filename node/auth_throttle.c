/*
 * auth_throttle: the failed-login delay table (policy and bounds in
 * node/auth_throttle.h).
 */
#include "node/auth_throttle.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define THROTTLE_WAYS 4
#define THROTTLE_LOCKS 64

struct throttle_entry {
	uint64_t hash; /* 0 = free */
	uint64_t last_ms;
	uint32_t failures;
};

struct auth_throttle {
	struct throttle_entry *entries;
	size_t nsets; /* power of two */
	uint64_t key[2];
	_Atomic unsigned initial_ms, max_ms, forget_ms;
	pthread_mutex_t locks[THROTTLE_LOCKS];
};

/* ---- SipHash-2-4 (Aumasson and Bernstein), 64-bit output ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

static uint64_t siphash(const uint64_t key[2], const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t v[4] = {key[0] ^ 0x736f6d6570736575ull, key[1] ^ 0x646f72616e646f6dull,
			 key[0] ^ 0x6c7967656e657261ull, key[1] ^ 0x7465646279746573ull};
	uint64_t b = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t m = 0;
		for (int k = 0; k < 8; k++)
			m |= (uint64_t)p[i + k] << (8 * k);
		v[3] ^= m;
		sip_round(v);
		sip_round(v);
		v[0] ^= m;
	}
	for (int k = 0; i + (size_t)k < len; k++)
		b |= (uint64_t)p[i + (size_t)k] << (8 * k);
	v[3] ^= b;
	sip_round(v);
	sip_round(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int r = 0; r < 4; r++)
		sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- table ---- */

void auth_throttle_configure(struct auth_throttle *t, const struct auth_throttle_settings *set)
{
	unsigned max = set->max_ms < set->initial_ms ? set->initial_ms : set->max_ms;
	atomic_store(&t->initial_ms, set->initial_ms);
	atomic_store(&t->max_ms, max);
	atomic_store(&t->forget_ms, (set->forget_sec > 0 ? set->forget_sec : 1) * 1000u);
}

struct auth_throttle *auth_throttle_new(const struct auth_throttle_settings *set)
{
	struct auth_throttle *t = calloc(1, sizeof(*t));
	size_t slots = 64;

	if (t == NULL)
		return NULL;
	while (slots < set->slots && slots < ((size_t)1 << 30))
		slots <<= 1;
	t->nsets = slots / THROTTLE_WAYS;
	t->entries = calloc(slots, sizeof(*t->entries));
	if (t->entries == NULL || getrandom(t->key, sizeof(t->key), 0) != sizeof(t->key)) {
		free(t->entries);
		free(t);
		return NULL;
	}
	for (int i = 0; i < THROTTLE_LOCKS; i++)
		pthread_mutex_init(&t->locks[i], NULL);
	auth_throttle_configure(t, set);
	return t;
}

void auth_throttle_free(struct auth_throttle **t)
{
	if (*t == NULL)
		return;
	for (int i = 0; i < THROTTLE_LOCKS; i++)
		pthread_mutex_destroy(&(*t)->locks[i]);
	free((*t)->entries);
	free(*t);
	*t = NULL;
}

/* Failures still remembered at now (one forgotten per quiet forget_ms). */
static uint32_t entry_failures(const struct throttle_entry *e, uint64_t now_ms, unsigned forget_ms)
{
	if (e->hash == 0 || e->failures == 0)
		return 0;
	uint64_t quiet = now_ms > e->last_ms ? now_ms - e->last_ms : 0;
	uint64_t forgotten = quiet / forget_ms;
	return forgotten >= e->failures ? 0 : e->failures - (uint32_t)forgotten;
}

static unsigned delay_for(uint32_t failures, unsigned initial_ms, unsigned max_ms)
{
	if (failures == 0 || initial_ms == 0)
		return 0;
	uint64_t d = (uint64_t)initial_ms << (failures - 1 < 32 ? failures - 1 : 32);
	return d > max_ms ? max_ms : (unsigned)d;
}

/* The set of key and its lock; *hash_r never 0. */
static struct throttle_entry *throttle_set(struct auth_throttle *t, const char *key,
					   uint64_t *hash_r, pthread_mutex_t **lock_r)
{
	uint64_t h = siphash(t->key, key, strlen(key));
	if (h == 0)
		h = 1;
	size_t set = (size_t)(h & (t->nsets - 1));
	*hash_r = h;
	*lock_r = &t->locks[set % THROTTLE_LOCKS];
	return &t->entries[set * THROTTLE_WAYS];
}

unsigned auth_throttle_failure(struct auth_throttle *t, const char *key, uint64_t now_ms)
{
	unsigned initial = atomic_load(&t->initial_ms), max = atomic_load(&t->max_ms);
	unsigned forget = atomic_load(&t->forget_ms);
	pthread_mutex_t *lock;
	uint64_t h;
	struct throttle_entry *set = throttle_set(t, key, &h, &lock), *e = NULL, *victim = NULL;
	uint32_t victim_failures = UINT32_MAX;

	pthread_mutex_lock(lock);
	for (int w = 0; w < THROTTLE_WAYS; w++) {
		uint32_t f = entry_failures(&set[w], now_ms, forget);
		if (set[w].hash == h) {
			e = &set[w];
			break;
		}
		/* The entry with the fewest remaining failures (the oldest
		 * among equals) gives way. */
		if (f < victim_failures ||
		    (f == victim_failures && victim != NULL && set[w].last_ms < victim->last_ms)) {
			victim = &set[w];
			victim_failures = f;
		}
	}
	uint32_t failures = 1;
	if (e != NULL)
		failures = entry_failures(e, now_ms, forget) + 1;
	else
		e = victim;
	if (failures > AUTH_THROTTLE_MAX_FAILURES)
		failures = AUTH_THROTTLE_MAX_FAILURES;
	e->hash = h;
	e->failures = failures;
	e->last_ms = now_ms;
	pthread_mutex_unlock(lock);
	return delay_for(failures, initial, max);
}

void auth_throttle_forget(struct auth_throttle *t, const char *key)
{
	pthread_mutex_t *lock;
	uint64_t h;
	struct throttle_entry *set = throttle_set(t, key, &h, &lock);

	pthread_mutex_lock(lock);
	for (int w = 0; w < THROTTLE_WAYS; w++)
		if (set[w].hash == h)
			memset(&set[w], 0, sizeof(set[w]));
	pthread_mutex_unlock(lock);
}

/* key's failures still remembered, capped below the table's maximum. */
static uint32_t recent_failures(struct auth_throttle *t, const char *key, uint64_t now_ms)
{
	unsigned forget = atomic_load(&t->forget_ms);
	pthread_mutex_t *lock;
	uint64_t h;
	struct throttle_entry *set = throttle_set(t, key, &h, &lock);
	uint32_t failures = 0;

	pthread_mutex_lock(lock);
	for (int w = 0; w < THROTTLE_WAYS; w++)
		if (set[w].hash == h)
			failures = entry_failures(&set[w], now_ms, forget);
	pthread_mutex_unlock(lock);
	return failures >= AUTH_THROTTLE_MAX_FAILURES ? AUTH_THROTTLE_MAX_FAILURES - 1 : failures;
}

unsigned auth_throttle_peek(struct auth_throttle *t, const char *key, uint64_t now_ms)
{
	uint32_t failures = recent_failures(t, key, now_ms);
	return delay_for(failures + 1, atomic_load(&t->initial_ms), atomic_load(&t->max_ms));
}

unsigned auth_throttle_penalty(struct auth_throttle *t, const char *key, uint64_t now_ms)
{
	uint32_t failures = recent_failures(t, key, now_ms);
	return failures == 0 ? 0
			     : delay_for(failures, atomic_load(&t->initial_ms), atomic_load(&t->max_ms));
}

size_t auth_throttle_tracked(struct auth_throttle *t, uint64_t now_ms)
{
	unsigned forget = atomic_load(&t->forget_ms);
	size_t n = 0;

	for (size_t s = 0; s < t->nsets; s++) {
		pthread_mutex_lock(&t->locks[s % THROTTLE_LOCKS]);
		for (int w = 0; w < THROTTLE_WAYS; w++)
			n += entry_failures(&t->entries[s * THROTTLE_WAYS + w], now_ms, forget) > 0;
		pthread_mutex_unlock(&t->locks[s % THROTTLE_LOCKS]);
	}
	return n;
}
