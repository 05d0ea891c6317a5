/*
 * Relay decision and the shared policy state (node/smtp_policy.h).
 */
#include "node/smtp_policy.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/log.h"
#include "node/smtp_dnsbl.h"
#include "node/smtp_ratelimit.h"

struct smtp_policy {
	pthread_mutex_t lock; /* current */
	struct smtp_policy_settings *current;
	struct smtp_ratelimit *ratelimit;
	struct smtp_dnsbl *dnsbl;
};

/* Zero: no trusted network, no relay domain, no DNSBL, no limit, no
 * timeout; never freed. */
static struct smtp_policy_settings smtp_policy_none = {.refs = 1};

static struct smtp_policy_settings *smtp_policy_snapshot(const struct node_config_smtp *cfg)
{
	struct smtp_policy_settings *s = malloc(sizeof(*s));
	if (s == NULL)
		return NULL;
	atomic_init(&s->refs, 1);
	s->smtp = *cfg;
	return s;
}

int smtp_policy_new(const struct node_config_smtp *cfg, struct smtp_policy **p_r,
		    const char **error_r)
{
	struct smtp_policy *p = calloc(1, sizeof(*p));
	if (p == NULL || (p->current = smtp_policy_snapshot(cfg)) == NULL ||
	    (p->ratelimit = smtp_ratelimit_new()) == NULL ||
	    (p->dnsbl = smtp_dnsbl_new(cfg->resolver)) == NULL) {
		if (p != NULL) {
			free(p->current);
			smtp_ratelimit_free(&p->ratelimit);
			free(p);
		}
		*error_r = "out of memory";
		return -1;
	}
	pthread_mutex_init(&p->lock, NULL);
	*p_r = p;
	return 0;
}

void smtp_policy_configure(struct smtp_policy *p, const struct node_config_smtp *cfg)
{
	struct smtp_policy_settings *s = smtp_policy_snapshot(cfg);
	if (s == NULL) {
		log_error("config", "smtp: out of memory taking the new settings; keeping the old");
		return;
	}
	pthread_mutex_lock(&p->lock);
	const struct smtp_policy_settings *old = p->current;
	if (strcmp(old->smtp.resolver, cfg->resolver) != 0)
		log_warning("config", "smtp.resolver changes only on restart");
	bool zones_changed = old->smtp.n_dnsbl != cfg->n_dnsbl;
	for (size_t i = 0; !zones_changed && i < cfg->n_dnsbl; i++)
		zones_changed = strcmp(old->smtp.dnsbl[i], cfg->dnsbl[i]) != 0;
	p->current = s;
	pthread_mutex_unlock(&p->lock);
	if (zones_changed)
		smtp_dnsbl_forget(p->dnsbl);
	smtp_policy_settings_put(&old);
}

void smtp_policy_free(struct smtp_policy **pp)
{
	struct smtp_policy *p = *pp;
	if (p == NULL)
		return;
	const struct smtp_policy_settings *s = p->current;
	smtp_policy_settings_put(&s);
	smtp_ratelimit_free(&p->ratelimit);
	smtp_dnsbl_free(&p->dnsbl);
	pthread_mutex_destroy(&p->lock);
	free(p);
	*pp = NULL;
}

const struct smtp_policy_settings *smtp_policy_settings_get(struct smtp_policy *p)
{
	if (p == NULL)
		return &smtp_policy_none;
	pthread_mutex_lock(&p->lock);
	struct smtp_policy_settings *s = p->current;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&p->lock);
	return s;
}

void smtp_policy_settings_put(const struct smtp_policy_settings **sp)
{
	struct smtp_policy_settings *s = (struct smtp_policy_settings *)*sp;
	*sp = NULL;
	if (s == NULL || s == &smtp_policy_none)
		return;
	if (atomic_fetch_sub(&s->refs, 1) == 1)
		free(s);
}

struct smtp_ratelimit *smtp_policy_ratelimit(struct smtp_policy *p)
{
	return p != NULL ? p->ratelimit : NULL;
}

struct smtp_dnsbl *smtp_policy_dnsbl(struct smtp_policy *p)
{
	return p != NULL ? p->dnsbl : NULL;
}

const char *smtp_policy_domain(const char *mailbox)
{
	const char *at = strrchr(mailbox, '@');
	return at != NULL ? at + 1 : NULL;
}

bool smtp_policy_routing(const char *mailbox)
{
	const char *at = strrchr(mailbox, '@');
	size_t len = at != NULL ? (size_t)(at - mailbox) : strlen(mailbox);
	for (size_t i = 0; i < len; i++)
		if (mailbox[i] == '%' || mailbox[i] == '!' || mailbox[i] == '@')
			return true;
	return false;
}

bool smtp_policy_relay_domain(const struct node_config_smtp *cfg, const char *domain)
{
	size_t dlen = strlen(domain);
	for (size_t i = 0; i < cfg->n_relay_domains; i++) {
		const char *r = cfg->relay_domains[i];
		size_t rlen = strlen(r);
		if (r[0] == '.') {
			/* ".example.org": a.example.org, never example.org itself */
			if (dlen > rlen && strcasecmp(domain + dlen - rlen, r) == 0)
				return true;
		} else if (strcasecmp(domain, r) == 0) {
			return true;
		}
	}
	return false;
}

enum smtp_relay_verdict smtp_policy_relay(const struct node_config_smtp *cfg, bool may_relay,
					  const char *mailbox, bool domain_local)
{
	const char *domain = smtp_policy_domain(mailbox);
	bool routing = smtp_policy_routing(mailbox);

	if (domain == NULL || domain[0] == '\0')
		return may_relay ? SMTP_RELAY_ROUTING : SMTP_RELAY_DENIED;
	if (domain[0] == '[')
		return may_relay ? SMTP_RELAY_REMOTE : SMTP_RELAY_DENIED;
	if (domain_local) {
		if (!routing)
			return SMTP_RELAY_LOCAL;
		return may_relay ? SMTP_RELAY_ROUTING : SMTP_RELAY_DENIED;
	}
	if (may_relay)
		return SMTP_RELAY_REMOTE;
	if (smtp_policy_relay_domain(cfg, domain) && !routing)
		return SMTP_RELAY_REMOTE;
	return SMTP_RELAY_DENIED;
}
