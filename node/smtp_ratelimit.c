/*
 * Per-client message rates (node/smtp_ratelimit.h). A record lives two
 * minutes after its client's last message: past that its previous
 * minute is empty too and forgetting it changes nothing.
 */
#include "node/smtp_ratelimit.h"

#include <pthread.h>
#include <stdlib.h>

#include "node/log.h"
#include "node/smtp_client_table.h"

#define MINUTE_MS 60000u

struct smtp_rate_record {
	uint64_t window_start_ms; /* start of the current minute for this client */
	unsigned cur, prev;	  /* messages in the current and the previous minute */
};

struct smtp_ratelimit {
	pthread_mutex_t lock;
	struct smtp_client_table *table;
	bool full_logged;
};

struct smtp_ratelimit *smtp_ratelimit_new(void)
{
	struct smtp_ratelimit *rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return NULL;
	rl->table = smtp_client_table_new(SMTP_RATELIMIT_CLIENTS, sizeof(struct smtp_rate_record));
	if (rl->table == NULL) {
		free(rl);
		return NULL;
	}
	pthread_mutex_init(&rl->lock, NULL);
	return rl;
}

void smtp_ratelimit_free(struct smtp_ratelimit **rlp)
{
	struct smtp_ratelimit *rl = *rlp;
	if (rl == NULL)
		return;
	smtp_client_table_free(&rl->table);
	pthread_mutex_destroy(&rl->lock);
	free(rl);
	*rlp = NULL;
}

int smtp_ratelimit_take(struct smtp_ratelimit *rl, const struct cidr *addr, unsigned limit,
			uint64_t now_ms)
{
	uint64_t *expires;
	int allowed = 1;

	if (limit == 0)
		return 1;
	struct cidr client; /* an IPv6 client is its /64, as for connections and logins */
	cidr_client(addr, &client);
	pthread_mutex_lock(&rl->lock);
	struct smtp_rate_record *r = smtp_client_table_get(rl->table, &client, now_ms, true, &expires);
	if (r == NULL) {
		if (!rl->full_logged)
			log_warning("smtp",
				    "message rate table full (%u clients): new clients are "
				    "not rate limited until older ones expire",
				    SMTP_RATELIMIT_CLIENTS);
		rl->full_logged = true;
		pthread_mutex_unlock(&rl->lock);
		return 1;
	}
	if (r->window_start_ms == 0 || now_ms >= r->window_start_ms + 2 * MINUTE_MS) {
		r->window_start_ms = now_ms;
		r->prev = r->cur = 0;
	} else if (now_ms >= r->window_start_ms + MINUTE_MS) {
		r->window_start_ms += MINUTE_MS;
		r->prev = r->cur;
		r->cur = 0;
	}
	uint64_t into = now_ms - r->window_start_ms;
	/* prev * (what the window still covers of it) + cur, in ms units so
	 * that no rounding lets a message more through */
	uint64_t estimate = (uint64_t)r->prev * (MINUTE_MS - into) + (uint64_t)r->cur * MINUTE_MS;
	if (estimate >= (uint64_t)limit * MINUTE_MS)
		allowed = 0;
	else
		r->cur++;
	*expires = now_ms + 2 * MINUTE_MS;
	pthread_mutex_unlock(&rl->lock);
	return allowed;
}
