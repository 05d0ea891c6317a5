/*
 * The envelope policy of the SMTP services: MAIL starts a transaction
 * (queue ID, sender, declared size); RCPT decides each recipient at once,
 * against the directory and the store's quota, so that nothing is ever
 * accepted and bounced later:
 *
 *   address                                   reply
 *   local user, alias, group or catch-all     250 2.1.5 (every local
 *     reaching local mailboxes only           mailbox it reaches is kept)
 *   local domain, nothing matches             550 5.1.1 User unknown
 *   other domain, client may relay, or the    250 2.1.5 (kept as a remote
 *     domain is in smtp.relay_domains           recipient for the queue)
 *   other domain otherwise, address literal   554 5.7.1 Relay access denied
 *     or routing ('%', '!', quoted '@') from
 *     a client that may not relay
 *   routing in a local domain from a client   550 5.1.1 (never delivered to
 *     that may relay                            a catch-all)
 *   alias/group reaching a remote address     550 5.7.1 (no forwarding yet)
 *   a mailbox reached without room           452 4.2.2 Mailbox full
 *   ... smaller than MAIL's SIZE= altogether  552 5.2.2
 *   more recipients than a message may have   452 4.5.3 (next transaction)
 *     (QUEUE_RCPT_MAX, less one for the
 *     archive copy: local mailboxes and remote
 *     targets, aliases and groups expanded)
 *   malformed address                         501 5.1.3
 *   directory or store error                  451 4.3.0 (try again)
 *
 * "Postmaster" without a domain (RFC 5321 §4.5.1) means postmaster at
 * the local domain that is the node's host name or its nearest parent. Disabled users receive mail
 * (the flag stops logins only). Who may relay is smtp_policy.c's decision (node/smtp_policy.h); a
 * local alias or group that reaches a remote address is still refused, as a whole rather than
 * delivered in part, because the part left out could not even be bounced.
 *
 * MAIL counts against the client's message rate (smtp.max_messages_per_minute, clients in
 * smtp.trusted_networks exempt, as Postfix exempts $mynetworks): over it, 450 4.7.1.
 *
 * Quota at RCPT reads the usage of each reached mailbox whose user has a
 * quota (synchronously: see node/smtp_service.h). Usage at or above the
 * quota, or below it by less than the declared size, is "full"; a group
 * with one full member waits as a whole (452), for the same reason as
 * above. Recipients are kept in the order given and deduplicated at
 * commit, so a user reached twice (directly and through a group) gets
 * one copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/dsn.h"
#include "node/log.h"
#include "node/smtp_client_table.h"
#include "node/smtp_ratelimit.h"
#include "node/smtp_service_private.h"

/* What one RCPT address expanded to. */
struct smtp_expansion {
	struct smtp_local_rcpt *rcpts;
	size_t n, cap;
	size_t room; /* local mailboxes this RCPT may still add */
	bool overflow;
	char (*remote)[DIRECTORY_ADDRESS_MAX]; /* alias and group targets elsewhere */
	size_t nremote, capremote;
};

void smtp_txn_clear(struct smtp_txn *t)
{
	mail_writer_abort(&t->writer);
	queue_writer_abort(&t->qwriter);
	free(t->rcpts);
	free(t->remote);
	textbuf_free(&t->orcpts);
	memset(t, 0, sizeof(*t));
}

/* The client's message rate: 0 within it (this message counted), -1
 * over it after filling *reply. */
static int smtp_mail_rate(struct smtp_conn *sc, struct smtp_reply *reply)
{
	unsigned limit = sc->policy->smtp.max_messages_per_minute;
	struct smtp_ratelimit *rl = smtp_policy_ratelimit(sc->env->smtp_policy);
	char addr[CIDR_TEXT_MAX];

	if (limit == 0 || rl == NULL || sc->trusted || !sc->client_known ||
	    smtp_ratelimit_take(rl, &sc->client, limit, smtp_client_table_now_ms()) == 1)
		return 0;
	cidr_format(&sc->client, addr, sizeof(addr));
	addr[strcspn(addr, "/")] = '\0';
	snprintf(sc->reply_text, sizeof(sc->reply_text), "Error: too many messages from [%s]", addr);
	*reply = (struct smtp_reply){450, "4.7.1", sc->reply_text};
	log_notice("smtp", "reject conn=%llu peer=%s: 450 4.7.1 %s (limit %u per minute)",
		   (unsigned long long)conn_info(sc->c)->id, conn_info(sc->c)->peer, sc->reply_text,
		   limit);
	return -1;
}

int smtp_quota_room(struct store *store, const char *address, uint64_t limit, uint64_t size,
		    const char **error_r)
{
	struct store_user *user = NULL;
	struct store_quota_usage usage;

	if (limit == 0)
		return 1;
	int ret = store_user_open(store, address, &user, error_r);
	if (ret == 0) {
		ret = store_quota_get(user, &usage, error_r);
		store_user_close(&user);
	}
	if (ret < 0)
		return ret;
	return usage.bytes < limit && size <= limit - usage.bytes ? 1 : 0;
}

void smtp_envelope_mail_from(void *ctx, const char *reverse_path, const struct smtp_mail_params *p,
			     struct smtp_reply *reply)
{
	struct smtp_conn *sc = ctx;
	struct smtp_txn *t = &sc->txn;

	/* every syntactically valid sender is accepted (the engine checked
	 * the syntax: 501 5.1.7) */
	smtp_txn_clear(t);
	if (smtp_mail_rate(sc, reply) < 0)
		return;
	t->active = true;
	smtp_queue_id_new(sc->env->node_id, t->queue_id);
	snprintf(t->sender, sizeof(t->sender), "%s", reverse_path);
	t->declared_size = p->size;
	t->body_8bit = p->body_8bit;
	t->ret_hdrs = p->ret_hdrs;
	t->ret_full = p->ret_full;
	snprintf(t->envid, sizeof(t->envid), "%s", p->envid != NULL ? p->envid : "");
	clock_gettime(CLOCK_MONOTONIC, &t->started);
}

void smtp_envelope_reset(void *ctx)
{
	struct smtp_conn *sc = ctx;
	smtp_txn_clear(&sc->txn);
}

static int smtp_expand_cb(const char *address, bool local, void *ctx)
{
	struct smtp_expansion *x = ctx;

	if (!local) {
		if (x->n + x->nremote >= x->room) {
			x->overflow = true;
			return 1;
		}
		if (x->nremote == x->capremote) {
			size_t cap = x->capremote ? x->capremote * 2 : 4;
			void *r = realloc(x->remote, cap * sizeof(*x->remote));
			if (r == NULL)
				return DIRECTORY_E_IO;
			x->remote = r;
			x->capremote = cap;
		}
		snprintf(x->remote[x->nremote++], sizeof(x->remote[0]), "%s", address);
		return 0;
	}
	if (x->n + x->nremote >= x->room) {
		x->overflow = true;
		return 1;
	}
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 4;
		struct smtp_local_rcpt *r = realloc(x->rcpts, cap * sizeof(*r));
		if (r == NULL)
			return DIRECTORY_E_IO;
		x->rcpts = r;
		x->cap = cap;
	}
	memset(&x->rcpts[x->n], 0, sizeof(x->rcpts[x->n]));
	snprintf(x->rcpts[x->n].address, sizeof(x->rcpts[x->n].address), "%s", address);
	x->n++;
	return 0;
}

/* Logs a refused RCPT as Postfix does and fills *reply. */
static void smtp_rcpt_refuse(struct smtp_conn *sc, struct smtp_reply *reply, int code,
			     const char *enhanced, const char *rcpt, const char *fmt,
			     const char *arg)
{
	char why[256];

	snprintf(why, sizeof(why), fmt, arg);
	snprintf(sc->reply_text, sizeof(sc->reply_text), "<%s>: %s", rcpt, why);
	*reply = (struct smtp_reply){code, enhanced, sc->reply_text};
	smtp_log_reject(sc, "", reply, rcpt);
}

void smtp_log_reject(struct smtp_conn *sc, const char *stage, const struct smtp_reply *reply,
		     const char *rcpt)
{
	const struct conn_info *info = conn_info(sc->c);
	log_notice("smtp",
		   "reject conn=%llu id=%s peer=%s: %s%d %s %s; from=<%s> to=<%s> proto=%s helo=<%s>",
		   (unsigned long long)info->id, sc->txn.queue_id, info->peer, stage, reply->code,
		   reply->enhanced != NULL ? reply->enhanced : "", reply->text, sc->txn.sender,
		   rcpt, smtp_conn_proto(sc), smtp_session_helo(sc->sess));
}

/* Reads the quota of each expanded mailbox and checks its room: 0 all
 * fit, or <0 after filling *reply. */
static int smtp_rcpt_quota(struct smtp_conn *sc, struct smtp_expansion *x, const char *rcpt,
			   struct smtp_reply *reply)
{
	const struct service_env *env = sc->env;
	uint64_t size = sc->txn.declared_size;
	size_t kept = 0;

	for (size_t i = 0; i < x->n; i++) {
		struct smtp_local_rcpt *r = &x->rcpts[i];
		struct directory_user u;
		const char *error = NULL;
		int ret = directory_user_get(env->dir, r->address, &u, &error);
		if (ret == DIRECTORY_E_NOTFOUND)
			continue; /* deleted since the expansion: resolve drops such targets too */
		if (ret < 0) {
			log_warning("smtp", "conn=%llu id=%s directory user %s: %s",
				    (unsigned long long)conn_info(sc->c)->id, sc->txn.queue_id,
				    r->address, error ? error : directory_strerror(ret));
			smtp_rcpt_refuse(sc, reply, 451, "4.3.0", rcpt, "%s",
					 "Temporary lookup failure, try again later");
			return -1;
		}
		r->quota_bytes = u.quota_bytes;
		if (u.quota_bytes != 0 && size > u.quota_bytes) {
			smtp_rcpt_refuse(sc, reply, 552, "5.2.2", rcpt, "%s",
					 "Recipient address rejected: message is larger than the "
					 "mailbox quota");
			return -1;
		}
		ret = smtp_quota_room(env->store, r->address, u.quota_bytes, size, &error);
		if (ret < 0) {
			log_warning("smtp", "conn=%llu id=%s quota of %s: %s",
				    (unsigned long long)conn_info(sc->c)->id, sc->txn.queue_id,
				    r->address, error ? error : store_strerror(ret));
			smtp_rcpt_refuse(sc, reply, 451, "4.3.0", rcpt, "%s",
					 "Temporary lookup failure, try again later");
			return -1;
		}
		if (ret == 0) {
			smtp_rcpt_refuse(sc, reply, 452, "4.2.2", rcpt, "%s",
					 "Recipient address rejected: Mailbox full");
			return -1;
		}
		x->rcpts[kept++] = *r;
	}
	x->n = kept;
	if (kept == 0 && x->nremote == 0) {
		smtp_rcpt_refuse(sc, reply, 550, "5.1.1", rcpt, "%s",
				 "Recipient address rejected: User unknown");
		return -1;
	}
	return 0;
}

/* Appends x's mailboxes to the transaction: 0, or -1 out of memory. */
static int smtp_txn_add(struct smtp_txn *t, const struct smtp_expansion *x)
{
	if (t->nlocal + x->n > t->cap) {
		size_t cap = t->cap ? t->cap : 8;
		while (cap < t->nlocal + x->n)
			cap *= 2;
		struct smtp_local_rcpt *r = realloc(t->rcpts, cap * sizeof(*r));
		if (r == NULL)
			return -1;
		t->rcpts = r;
		t->cap = cap;
	}
	if (x->n > 0) /* a forwarding alias reaches no local mailbox */
		memcpy(t->rcpts + t->nlocal, x->rcpts, x->n * sizeof(*x->rcpts));
	for (size_t i = 0; i < x->n; i++)
		t->rcpts[t->nlocal + i].seq = (uint32_t)(t->nlocal + i);
	t->nlocal += x->n;
	return 0;
}

/* "Postmaster" alone: postmaster@ the local domain that is the node's
 * host name or its nearest parent (mx.example.org -> example.org).
 * 0, or -1 when no such domain is local. */
static int smtp_postmaster(const struct service_env *env, char *out, size_t size)
{
	for (const char *d = env->hostname; d != NULL && strchr(d, '.') != NULL;
	     d = strchr(d, '.') + 1) {
		if (directory_domain_exists(env->dir, d) == 1) {
			snprintf(out, size, "postmaster@%s", d);
			return 0;
		}
	}
	return -1;
}

static int remote_cmp_address(const void *a, const void *b)
{
	const struct smtp_remote_rcpt *x = a, *y = b;
	int c = strcasecmp(x->address, y->address);
	return c != 0 ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int remote_cmp_seq(const void *a, const void *b)
{
	const struct smtp_remote_rcpt *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

size_t smtp_txn_unique_remotes(struct smtp_txn *t)
{
	if (t->nremote == 0)
		return 0;
	qsort(t->remote, t->nremote, sizeof(*t->remote), remote_cmp_address);
	size_t n = 0;
	for (size_t i = 0; i < t->nremote; i++) {
		struct smtp_remote_rcpt *first = n > 0 ? &t->remote[n - 1] : NULL;
		if (first != NULL && strcasecmp(first->address, t->remote[i].address) == 0)
			first->notify = smtp_notify_merge(first->notify, t->remote[i].notify);
		else if (n++ != i)
			t->remote[n - 1] = t->remote[i];
	}
	qsort(t->remote, n, sizeof(*t->remote), remote_cmp_seq);
	t->nremote = n;
	return n;
}

/* Recipients a message may still take: the queue's limit, less one for
 * the archive copy, less what this transaction holds (local ones counted
 * before their deduplication, remote ones before theirs). */
static size_t smtp_txn_room(const struct smtp_txn *t)
{
	size_t used = t->nlocal + t->nremote + 1;
	return used < QUEUE_RCPT_MAX ? QUEUE_RCPT_MAX - used : 0;
}

/* Keeps a permitted remote recipient: 0, or -1 out of memory. */
static int smtp_txn_add_remote(struct smtp_txn *t, const char *address,
			       const struct smtp_rcpt_params *p)
{
	if (t->nremote == t->remote_cap) {
		size_t cap = t->remote_cap ? t->remote_cap * 2 : 4;
		struct smtp_remote_rcpt *r = realloc(t->remote, cap * sizeof(*r));
		if (r == NULL)
			return -1;
		t->remote = r;
		t->remote_cap = cap;
	}
	struct smtp_remote_rcpt *r = &t->remote[t->nremote];
	r->seq = t->nremote++;
	snprintf(r->address, sizeof(r->address), "%s", address);
	r->notify = p->notify;
	snprintf(r->orcpt, sizeof(r->orcpt), "%s", p->orcpt != NULL ? p->orcpt : "");
	return 0;
}

int smtp_txn_add_mailbox(struct smtp_txn *t, const char *address)
{
	struct smtp_local_rcpt r = {0};
	snprintf(r.address, sizeof(r.address), "%.*s", (int)sizeof(r.address) - 1, address);
	struct smtp_expansion x = {.rcpts = &r, .n = 1};
	return smtp_txn_add(t, &x);
}

/* The ORCPT the queue keeps for the local mailboxes of one RCPT (a DSN's
 * Original-Recipient): the client's, else the RCPT's address when an
 * alias or group chose the mailboxes; as an offset + 1 in t->orcpts, 0
 * for none. */
static uint32_t smtp_txn_local_orcpt(struct smtp_txn *t, const struct smtp_expansion *x,
				     const char *forward_path, const struct smtp_rcpt_params *p)
{
	char made[QUEUE_ORCPT_MAX];
	const char *orcpt = p->orcpt;
	if (orcpt == NULL && x->n > 0 &&
	    (x->n > 1 || strcasecmp(x->rcpts[0].address, forward_path) != 0) &&
	    dsn_orcpt_for(forward_path, made, sizeof(made)))
		orcpt = made;
	if (orcpt == NULL || x->n == 0 || t->orcpts.len >= UINT32_MAX - QUEUE_ORCPT_MAX)
		return 0;
	uint32_t off = (uint32_t)t->orcpts.len + 1;
	textbuf_append(&t->orcpts, orcpt, strlen(orcpt) + 1);
	return off;
}

/* The remote targets an alias or group reached (forwarding): they keep
 * the RCPT's NOTIFY, and its address as ORCPT when it gave none. */
static int smtp_txn_add_forwards(struct smtp_txn *t, const struct smtp_expansion *x,
				 const char *forward_path, const struct smtp_rcpt_params *p)
{
	char orcpt[QUEUE_ORCPT_MAX]; /* what a queued envelope keeps: longer, none */
	bool made = p->orcpt == NULL && dsn_orcpt_for(forward_path, orcpt, sizeof(orcpt));
	struct smtp_rcpt_params fp = {.notify = p->notify,
				      .orcpt = p->orcpt != NULL ? p->orcpt : made ? orcpt : NULL};
	for (size_t i = 0; i < x->nremote; i++)
		if (smtp_txn_add_remote(t, x->remote[i], &fp) < 0)
			return -1;
	return 0;
}

/* Counts an accepted RCPT. */
static void smtp_rcpt_accepted(struct smtp_txn *t, const char *forward_path)
{
	if (t->nrcpt++ == 0)
		snprintf(t->first_rcpt, sizeof(t->first_rcpt), "%s", forward_path);
}

/* The relay decision for a recipient outside the local domains, or one
 * that asks for routing: 1 when it decided (*reply filled unless the
 * recipient was kept as remote), 0 for a local recipient, the
 * directory's to resolve. */
static int smtp_rcpt_relay(struct smtp_conn *sc, const char *forward_path,
			   const struct smtp_rcpt_params *p, struct smtp_reply *reply)
{
	const struct service_env *env = sc->env;
	const char *domain = smtp_policy_domain(forward_path);
	bool may_relay = smtp_conn_may_relay(sc);
	int local = 0;

	if (domain == NULL)
		return 0; /* the directory answers 501 */
	if (domain[0] != '[') {
		local = directory_domain_exists(env->dir, domain);
		if (local == DIRECTORY_E_INVALID)
			return 0;
		if (local < 0) {
			log_warning("smtp", "conn=%llu id=%s domain %s: %s",
				    (unsigned long long)conn_info(sc->c)->id, sc->txn.queue_id, domain,
				    directory_strerror(local));
			smtp_rcpt_refuse(sc, reply, 451, "4.3.0", forward_path, "%s",
					 "Temporary lookup failure, try again later");
			return 1;
		}
	}
	switch (smtp_policy_relay(&sc->policy->smtp, may_relay, forward_path, local == 1)) {
	case SMTP_RELAY_LOCAL:
		return 0;
	case SMTP_RELAY_REMOTE:
		if (smtp_txn_room(&sc->txn) == 0) {
			smtp_rcpt_refuse(sc, reply, 452, "4.5.3", forward_path, "%s",
					 "Too many recipients for one message");
			return 1;
		}
		if (smtp_txn_add_remote(&sc->txn, forward_path, p) < 0) {
			smtp_rcpt_refuse(sc, reply, 451, "4.3.0", forward_path, "%s",
					 "Out of memory, try again later");
			return 1;
		}
		smtp_rcpt_accepted(&sc->txn, forward_path);
		log_info("smtp", "conn=%llu id=%s relay permitted to=<%s> (%s)",
			 (unsigned long long)conn_info(sc->c)->id, sc->txn.queue_id, forward_path,
			 smtp_session_user(sc->sess) != NULL ? "authenticated"
			 : sc->trusted			       ? "trusted network"
							       : "relay domain");
		return 1;
	case SMTP_RELAY_ROUTING:
		smtp_rcpt_refuse(sc, reply, 550, "5.1.1", forward_path, "%s",
				 "Recipient address rejected: User unknown (sender-specified "
				 "routing is not supported)");
		return 1;
	case SMTP_RELAY_DENIED:
		break;
	}
	smtp_rcpt_refuse(sc, reply, 554, "5.7.1", forward_path, "%s", "Relay access denied");
	return 1;
}

void smtp_envelope_rcpt_to(void *ctx, const char *forward_path, const struct smtp_rcpt_params *p,
			   struct smtp_reply *reply)
{
	struct smtp_conn *sc = ctx;
	const struct service_env *env = sc->env;
	struct smtp_txn *t = &sc->txn;
	struct smtp_expansion x = {.room = smtp_txn_room(t)};
	char postmaster[DIRECTORY_ADDRESS_MAX];
	const char *address = forward_path;
	const char *error = NULL;

	if (env->dir == NULL || env->store == NULL) {
		smtp_rcpt_refuse(sc, reply, 451, "4.3.0", forward_path, "%s",
				 "Temporary lookup failure, try again later");
		return;
	}
	if (smtp_rcpt_relay(sc, forward_path, p, reply) == 1)
		return;
	if (strchr(forward_path, '@') == NULL && strcasecmp(forward_path, "postmaster") == 0) {
		if (smtp_postmaster(env, postmaster, sizeof(postmaster)) < 0) {
			smtp_rcpt_refuse(sc, reply, 550, "5.1.1", forward_path, "%s",
					 "Recipient address rejected: no local domain matches "
					 "this node's host name");
			return;
		}
		address = postmaster;
	}
	int ret = directory_resolve(env->dir, address, smtp_expand_cb, &x, &error);
	if (ret == DIRECTORY_E_INVALID) {
		smtp_rcpt_refuse(sc, reply, 501, "5.1.3", forward_path, "%s",
				 "Bad recipient address syntax");
	} else if (ret == 0) {
		/* not local after all: the domain went away since the check */
		smtp_rcpt_refuse(sc, reply, 451, "4.3.0", forward_path, "%s",
				 "Temporary lookup failure, try again later");
	} else if (ret == DIRECTORY_E_NOTFOUND) {
		smtp_rcpt_refuse(sc, reply, 550, "5.1.1", forward_path, "%s",
				 "Recipient address rejected: User unknown");
	} else if (ret < 0) {
		log_warning("smtp", "conn=%llu id=%s resolving %s: %s",
			    (unsigned long long)conn_info(sc->c)->id, t->queue_id, address,
			    error ? error : directory_strerror(ret));
		smtp_rcpt_refuse(sc, reply, 451, "4.3.0", forward_path, "%s",
				 "Temporary lookup failure, try again later");
	} else if (x.nremote > 0 && env->queue == NULL) {
		log_info("smtp", "conn=%llu id=%s %s reaches remote address %s",
			 (unsigned long long)conn_info(sc->c)->id, t->queue_id, address, x.remote[0]);
		smtp_rcpt_refuse(sc, reply, 550, "5.7.1", forward_path, "%s",
				 "Recipient address rejected: forwarding to remote addresses is "
				 "not available on this node");
	} else if (x.overflow) {
		smtp_rcpt_refuse(sc, reply, 452, "4.5.3", forward_path, "%s",
				 "Too many recipients for one message, send the rest later");
	} else if (smtp_rcpt_quota(sc, &x, forward_path, reply) == 0) {
		uint32_t orcpt = smtp_txn_local_orcpt(t, &x, forward_path, p);
		for (size_t k = 0; k < x.n; k++) {
			x.rcpts[k].notify = p->notify;
			x.rcpts[k].orcpt = orcpt;
		}
		if (x.n > 0 && (p->notify & SMTP_NOTIFY_SUCCESS)) /* NEVER comes alone */
			t->notify_success = true;
		if (smtp_txn_add(t, &x) < 0 || smtp_txn_add_forwards(t, &x, forward_path, p) < 0) {
			smtp_rcpt_refuse(sc, reply, 451, "4.3.0", forward_path, "%s",
					 "Out of memory, try again later");
		} else {
			smtp_rcpt_accepted(t, forward_path);
			log_debug("smtp", "conn=%llu id=%s rcpt=<%s> mailboxes=%zu",
				  (unsigned long long)conn_info(sc->c)->id, t->queue_id,
				  forward_path, x.n);
		}
	}
	free(x.rcpts);
	free(x.remote);
}
