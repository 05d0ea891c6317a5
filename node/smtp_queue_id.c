/*
 * Queue IDs: the name of one SMTP transaction in replies ("250 2.0.0 Ok:
 * queued as ID"), in the Received: header and in every log line about
 * it, so that an operator can follow one message with one grep, as with
 * Postfix's queue IDs.
 *
 * Form: 15 characters of Crockford base32 (0-9 A-Z without I L O U):
 * 11 for the microseconds since the epoch (55 bits: good until the year
 * 3111), then 4 for the node id (20 bits hold every corosync node id we
 * accept, 1..65535). IDs sort by time within a node.
 *
 * Uniqueness: per process, every ID takes max(now, last + 1) microseconds
 * under an atomic compare-and-swap, so two transactions never share one
 * even within the same microsecond or on different threads; across
 * restarts the clock has moved on (a restart takes far longer than the
 * rate of one ID per microsecond could run ahead of it). The node id
 * makes IDs unique across the cluster. A clock stepped backwards by more
 * than the time since the last ID could repeat an old ID of this node;
 * IDs name log lines and replies, not files, so a repeat confuses a
 * grep, never a delivery.
 */
#include "node/queue_id.h"

#include <stdatomic.h>
#include <time.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static _Atomic uint64_t queue_id_last_us;

void smtp_queue_id_format(uint64_t us, unsigned node_id, char out[SMTP_QUEUE_ID_SIZE])
{
	for (int i = 10; i >= 0; i--) {
		out[i] = crockford[us & 31];
		us >>= 5;
	}
	uint64_t node = node_id;
	for (int i = 14; i >= 11; i--) {
		out[i] = crockford[node & 31];
		node >>= 5;
	}
	out[15] = '\0';
}

void smtp_queue_id_new(unsigned node_id, char out[SMTP_QUEUE_ID_SIZE])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	uint64_t last = atomic_load(&queue_id_last_us), next;
	do {
		next = now > last ? now : last + 1;
	} while (!atomic_compare_exchange_weak(&queue_id_last_us, &last, next));
	smtp_queue_id_format(next, node_id, out);
}
