/*
 * auth_throttle: progressive delays for failed logins, per key (auth.c
 * keeps one table for client addresses and one for accounts).
 *
 * Policy: the n-th recent failure of a key earns a delay of
 * initial_ms * 2^(n-1), capped at max_ms (0.5 s, 1 s, 2 s, ... 15 s with
 * the defaults). A failure is forgotten every forget_sec seconds without
 * a new one, and the count never exceeds AUTH_THROTTLE_MAX_FAILURES, so a
 * key left alone returns to no delay within a bounded time. The delay is
 * only ever applied before a failure reply: a client that presents the
 * right credentials is never delayed and never locked out, whatever an
 * attacker did to the account before.
 *
 * Memory is bounded: a fixed table of `slots` entries (4-way
 * set-associative, keyed by a SipHash-2-4 of the key under a random
 * per-process key, so clients cannot aim at one set); when a set is full
 * the entry with the fewest remaining failures gives way.
 *
 * Pure computation with the time passed in (tests drive the clock);
 * thread-safe (striped mutexes).
 */
#ifndef CM_NODE_AUTH_THROTTLE_H
#define CM_NODE_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_THROTTLE_MAX_FAILURES 20

struct auth_throttle_settings {
	unsigned initial_ms; /* delay after the first failure; 0 = no delays at all */
	unsigned max_ms;     /* cap */
	unsigned forget_sec; /* one failure forgotten per this many quiet seconds (>= 1) */
	size_t slots;	     /* table entries; rounded up to a power of two, >= 64 */
};

struct auth_throttle;

struct auth_throttle *auth_throttle_new(const struct auth_throttle_settings *set);
void auth_throttle_free(struct auth_throttle **t);
/* New delays and forget time (the table size stays). */
void auth_throttle_configure(struct auth_throttle *t, const struct auth_throttle_settings *set);

/* Records a failure of key at now_ms; returns the delay it earns (ms). */
unsigned auth_throttle_failure(struct auth_throttle *t, const char *key, uint64_t now_ms);
/* Forgets key's failures (a successful login of that account). */
void auth_throttle_forget(struct auth_throttle *t, const char *key);
/* The delay the next failure of key would earn, recording nothing. */
unsigned auth_throttle_peek(struct auth_throttle *t, const char *key, uint64_t now_ms);
/* The delay key's recent failures earned (what the last one got), 0 when
 * it has none: what any answer to it waits, a right password included. */
unsigned auth_throttle_penalty(struct auth_throttle *t, const char *key, uint64_t now_ms);
/* Keys with failures still remembered at now_ms (monitoring). */
size_t auth_throttle_tracked(struct auth_throttle *t, uint64_t now_ms);

#endif
