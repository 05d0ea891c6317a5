/*
 * A bounded table of small records keyed by client IP address, for the
 * SMTP service's per-client state that outlives a connection (message
 * rates, DNSBL verdicts). Each record has an expiry the owner sets; an
 * expired record is as good as absent and is reused or swept. When the
 * table is full and nothing has expired, nothing new is added (the
 * caller then goes on without the record: limits fail open rather than
 * refusing every new client). Not thread-safe: the owner locks.
 */
#ifndef CM_NODE_SMTP_CLIENT_TABLE_H
#define CM_NODE_SMTP_CLIENT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/cidr.h"

struct smtp_client_table;

/* The clock of the owners' expiries: CLOCK_MONOTONIC in milliseconds. */
uint64_t smtp_client_table_now_ms(void);

/* NULL on out of memory. value_size: bytes of each record's value. */
struct smtp_client_table *smtp_client_table_new(size_t max_entries, size_t value_size);
void smtp_client_table_free(struct smtp_client_table **t);
/*
 * The live record of addr at now_ms: its value (value_size bytes) and
 * *expires_ms_r, where the owner keeps its expiry. With create, a missing
 * or expired record is made anew (value zeroed, expiry now_ms: set it);
 * NULL then only when the table is full of live records or memory ran
 * out. Without create, NULL when there is no live record.
 */
void *smtp_client_table_get(struct smtp_client_table *t, const struct cidr *addr, uint64_t now_ms,
			    bool create, uint64_t **expires_ms_r);
/* Forgets every record. */
void smtp_client_table_clear(struct smtp_client_table *t);
/* Live records (expired ones not yet swept count too). */
size_t smtp_client_table_count(const struct smtp_client_table *t);

#endif
