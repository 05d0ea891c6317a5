/*
 * Local recipients of queued messages. Messages from SMTP sessions carry
 * mailboxes already (RCPT expanded them); messages from the maildrop
 * (sendmail) and alias targets carry names that may be aliases or groups,
 * so every pending local recipient is expanded here first: a mailbox stays,
 * anything else is replaced by its targets (the original is done, as
 * Postfix's "expanded" action), unknown names fail 5.1.1, and a name that
 * would take the message past QUEUE_RCPT_MAX recipients fails 5.5.3 as a
 * whole (none of its targets added: a part left out could not be told).
 *
 * Delivery to the mailboxes is one store_deliver() of one copy of the
 * message (hard links), behind a Return-Path: field. Per mailbox: stored
 * → delivered; full → pending 4.2.2 (5.2.2 when the message is larger
 * than the whole quota); other store errors → pending 4.3.0. A directory
 * failure (is the domain ours? what does the name expand to?) also leaves
 * the recipient pending 4.3.0: it is never routed outbound on a guess.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/dsn.h"
#include "lib/fd_read.h"
#include "lib/textbuf.h"
#include "node/log.h"
#include "node/queue_manager_private.h"
#include "node/smtp_received.h"
#include "storage/directory.h"

/* 1: address's domain is one of ours, 0: it is not, <0: the directory
 * failed to say. */
static int qm_domain_local(struct queue_manager *qm, const char *address)
{
	const char *at = strrchr(address, '@');
	return at == NULL ? 0 : directory_domain_exists(qm->env->dir, at + 1);
}

/* The directory failed for r: it waits for the next attempt (4.3.0).
 * Routed as remote instead, mail for our own domain would be relayed to
 * its MX, or bounced. */
static void qm_defer_directory(const struct queue_envelope *env, struct queue_rcpt *r,
			       const char *error)
{
	r->attempts++;
	r->remote_mta[0] = '\0';
	snprintf(r->status, sizeof(r->status), "4.3.0");
	snprintf(r->reason, sizeof(r->reason), "directory lookup failed: %s", error);
	log_warning("queue", "id=%s to=<%s> relay=local dsn=4.3.0 status=deferred (%s)", env->id,
		    r->address, r->reason);
}

struct qm_targets {
	char (*addr)[QUEUE_ADDRESS_MAX];
	size_t n, cap;
	bool self; /* the address resolved to itself: a mailbox */
	bool overflow; /* more targets than one message may have */
	const char *address;
};

static int qm_target_cb(const char *address, bool local, void *ctx)
{
	struct qm_targets *t = ctx;
	(void)local;
	if (strcasecmp(address, t->address) == 0) {
		t->self = true;
		return 0;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap != 0 ? t->cap * 2 : 8;
		if (cap > QUEUE_RCPT_MAX)
			cap = QUEUE_RCPT_MAX;
		if (t->n == cap) {
			t->overflow = true;
			return 1;
		}
		void *n = realloc(t->addr, cap * sizeof(*t->addr));
		if (n == NULL)
			return DIRECTORY_E_IO;
		t->addr = n;
		t->cap = cap;
	}
	snprintf(t->addr[t->n++], QUEUE_ADDRESS_MAX, "%s", address);
	return 0;
}

/*
 * The envelope's addresses, case aside, for expansion's "already a
 * recipient?": a probe per target instead of a walk over the envelope
 * (which made a large alias cost targets x recipients). FNV-1a over the
 * lowercased address, linear probing; a slot holds a recipient's index + 1
 * (indices stay valid when the array moves). Sized once for
 * QUEUE_RCPT_MAX at a load under 1/2; made and filled on the first
 * expansion that has targets, so a pass that expands nothing allocates
 * and walks nothing.
 */
#define QM_RCPT_SET_SLOTS 32768u
_Static_assert(QM_RCPT_SET_SLOTS >= 2 * (QUEUE_RCPT_MAX + 1), "the recipient set's load");

struct qm_rcpt_set {
	uint32_t *slot; /* NULL until the first expansion with targets */
};

static uint32_t *qm_rcpt_set_find(struct qm_rcpt_set *set, const struct queue_envelope *env,
				  const char *address)
{
	uint32_t h = 2166136261u;
	for (const char *p = address; *p != '\0'; p++)
		h = (h ^ (uint32_t)tolower((unsigned char)*p)) * 16777619u;
	uint32_t *s = &set->slot[h & (QM_RCPT_SET_SLOTS - 1)];
	while (*s != 0 && strcasecmp(env->rcpts[*s - 1].address, address) != 0)
		s = s + 1 < set->slot + QM_RCPT_SET_SLOTS ? s + 1 : set->slot;
	return s;
}

static void qm_rcpt_set_fill(struct qm_rcpt_set *set, const struct queue_envelope *env)
{
	if (set->slot != NULL)
		return;
	if ((set->slot = calloc(QM_RCPT_SET_SLOTS, sizeof(*set->slot))) == NULL)
		abort();
	for (size_t i = 0; i < env->nrcpt; i++) {
		uint32_t *s = qm_rcpt_set_find(set, env, env->rcpts[i].address);
		if (*s == 0)
			*s = (uint32_t)i + 1;
	}
}

/* Moves the targets that are not recipients yet to the front of t, in
 * their order; returns how many. */
static size_t qm_targets_new(struct qm_targets *t, struct qm_rcpt_set *set,
			     const struct queue_envelope *env)
{
	size_t n = 0;
	for (size_t k = 0; k < t->n; k++)
		if (*qm_rcpt_set_find(set, env, t->addr[k]) == 0 && n++ != k)
			memcpy(t->addr[n - 1], t->addr[k], sizeof(t->addr[k]));
	return n;
}

/* False when the directory failed: the recipient was deferred. */
static bool qm_expand(struct queue_manager *qm, struct queue_envelope *env, size_t i,
		      struct qm_rcpt_set *set)
{
	struct queue_rcpt *r = &env->rcpts[i];
	struct qm_targets t = {.address = r->address};
	const char *error = NULL;
	int ret = directory_resolve(qm->env->dir, r->address, qm_target_cb, &t, &error);
	size_t ntargets = t.n, nnew = 0;
	if (ret >= 0 && !t.overflow && t.n > 0) {
		qm_rcpt_set_fill(set, env);
		nnew = qm_targets_new(&t, set, env);
	}
	if (ret == DIRECTORY_E_NOTFOUND) {
		r->state = QUEUE_RCPT_FAILED;
		snprintf(r->status, sizeof(r->status), "5.1.1");
		snprintf(r->reason, sizeof(r->reason),
			 "550 5.1.1 <%s>: Recipient address rejected: User unknown", r->address);
		log_warning("queue", "id=%s to=<%s> relay=local dsn=5.1.1 status=bounced (%s)",
			    env->id, r->address, r->reason);
	} else if (ret < 0) {
		qm_defer_directory(env, r, error ? error : directory_strerror(ret));
	} else if (t.overflow || env->nrcpt + nnew > QUEUE_RCPT_MAX) {
		/* All or nothing: a part left out could not even be told. */
		r->state = QUEUE_RCPT_FAILED;
		snprintf(r->status, sizeof(r->status), "5.5.3");
		snprintf(r->reason, sizeof(r->reason),
			 "550 5.5.3 <%s>: expands to more recipients than one message may have (%d)",
			 r->address, QUEUE_RCPT_MAX);
		log_warning("queue", "id=%s to=<%s> relay=local dsn=5.5.3 status=bounced (%s)",
			    env->id, r->address, r->reason);
	} else if (!t.self || ntargets > 0) {
		char orcpt[QUEUE_ORCPT_MAX];
		unsigned notify = r->notify;
		size_t added = 0;
		if (r->orcpt[0] != '\0')
			snprintf(orcpt, sizeof(orcpt), "%s", r->orcpt);
		else
			(void)dsn_orcpt_for(r->address, orcpt, sizeof(orcpt));
		bool self = t.self;
		for (size_t k = 0; k < nnew; k++) {
			uint32_t *s = qm_rcpt_set_find(set, env, t.addr[k]);
			if (*s != 0) /* named twice among the targets, case aside */
				continue;
			if (queue_envelope_add_rcpt(env, t.addr[k], orcpt, notify) == 0) {
				*s = (uint32_t)env->nrcpt;
				added++;
			}
		}
		r = &env->rcpts[i]; /* the array may have moved */
		if (!self) {
			r->state = QUEUE_RCPT_DELIVERED;
			r->dsn_sent = true; /* "expanded" needs no notice of its own */
			snprintf(r->status, sizeof(r->status), "2.0.0");
			snprintf(r->reason, sizeof(r->reason), "expanded to %zu recipients", ntargets);
		}
		log_info("queue", "id=%s to=<%s> expanded to %zu recipients (%zu new)", env->id,
			 r->address, ntargets, added);
	}
	free(t.addr);
	return ret >= 0 || ret == DIRECTORY_E_NOTFOUND;
}

struct qm_copy {
	struct mail_writer *w;
	const char **error_r;
	int ret;
};

static int qm_copy_piece(const void *data, size_t n, void *ctx)
{
	struct qm_copy *c = ctx;
	c->ret = mail_writer_write(c->w, data, n, c->error_r);
	return c->ret < 0 ? -1 : 0;
}

/* The message from the spool behind a Return-Path: field. */
static int qm_copy_message(struct mail_writer *w, const char *sender, int fd, uint64_t size,
			   const char **error_r)
{
	struct textbuf rp = TEXTBUF_INIT;
	smtp_return_path_format(sender, &rp);
	struct qm_copy c = {w, error_r, mail_writer_write(w, rp.data, rp.len, error_r)};
	textbuf_free(&rp);
	if (c.ret == 0 && fd_read_range(fd, size, qm_copy_piece, &c) < 0 && c.ret == 0) {
		*error_r = errno == EIO ? "queue file shorter than its size" : strerror(errno);
		c.ret = STORE_E_TEMP;
	}
	return c.ret;
}

int qm_local_deliver(struct queue_manager *qm, struct queue_envelope *env, int data_fd,
		     bool **local_r)
{
	*local_r = NULL;
	/* Expansion appends recipients, which this loop visits in turn; each
	 * one's domain is asked once. */
	bool *local = calloc(QUEUE_RCPT_MAX + 1, sizeof(*local));
	bool *store = calloc(QUEUE_RCPT_MAX + 1, sizeof(*store));
	struct qm_rcpt_set set = {NULL};
	if (local == NULL || store == NULL) {
		free(local);
		free(store);
		return -1;
	}
	size_t n = 0;
	for (size_t i = 0; i < env->nrcpt; i++) {
		if (env->rcpts[i].state != QUEUE_RCPT_PENDING)
			continue;
		int ours = qm_domain_local(qm, env->rcpts[i].address);
		if (ours < 0)
			qm_defer_directory(env, &env->rcpts[i], directory_strerror(ours));
		local[i] = ours != 0;
		store[i] = ours == 1 && qm_expand(qm, env, i, &set) &&
			   env->rcpts[i].state == QUEUE_RCPT_PENDING;
		n += store[i];
	}
	free(set.slot);
	*local_r = local;
	if (n == 0) {
		free(store);
		return 0;
	}
	struct store_rcpt *sr = calloc(n, sizeof(*sr));
	size_t *idx = calloc(n, sizeof(*idx));
	struct mail_writer *w = NULL;
	const char *error = NULL;
	int ret = sr != NULL && idx != NULL ? 0 : STORE_E_TEMP;
	n = 0;
	for (size_t i = 0; ret == 0 && i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpts[i];
		if (!store[i])
			continue;
		struct directory_user u;
		sr[n].address = r->address;
		sr[n].result = STORE_E_TEMP;
		if (directory_user_get(qm->env->dir, r->address, &u, NULL) == 0)
			sr[n].quota.bytes = u.quota_bytes;
		sr[n].quota.warn_percent = qm->env->quota_warning;
		idx[n++] = i;
	}
	if (ret == 0)
		ret = mail_writer_create(qm->env->store, &w, &error);
	if (ret == 0)
		ret = qm_copy_message(w, env->sender, data_fd, env->size, &error);
	/* what each mailbox is charged: the spool's data and the Return-Path */
	uint64_t stored = ret == 0 ? mail_writer_size(w) : env->size;
	if (ret == 0) {
		struct store_delivery d = {0};
		ret = store_deliver(qm->env->store, &w, &d, sr, n, &error);
	}
	mail_writer_abort(&w);
	for (size_t k = 0; k < n; k++) {
		struct queue_rcpt *r = &env->rcpts[idx[k]];
		int res = ret < 0 ? ret : sr[k].result;
		const char *why = ret < 0		? (error ? error : store_strerror(ret))
				  : sr[k].error[0] != '\0' ? sr[k].error
							   : store_strerror(res);
		r->attempts++;
		if (res == STORE_OK) {
			r->state = QUEUE_RCPT_DELIVERED;
			snprintf(r->status, sizeof(r->status), "2.0.0");
			snprintf(r->reason, sizeof(r->reason), "delivered to mailbox");
		} else if (res == STORE_E_QUOTA && sr[k].quota.bytes != 0 &&
			   stored > sr[k].quota.bytes) {
			r->state = QUEUE_RCPT_FAILED;
			snprintf(r->status, sizeof(r->status), "5.2.2");
			snprintf(r->reason, sizeof(r->reason),
				 "552 5.2.2 <%s>: Mailbox full: the message is larger than its quota",
				 r->address);
		} else {
			bool full = res == STORE_E_QUOTA;
			snprintf(r->status, sizeof(r->status), full ? "4.2.2" : "4.3.0");
			snprintf(r->reason, sizeof(r->reason), "%s", full ? "mailbox full" : why);
		}
		r->remote_mta[0] = '\0';
		log_msg(res == STORE_OK ? LOG_INFO : LOG_WARNING, "queue",
			"id=%s to=<%s> relay=local dsn=%s status=%s (%s)%s", env->id, r->address,
			r->status,
			r->state == QUEUE_RCPT_DELIVERED ? "sent"
			: r->state == QUEUE_RCPT_FAILED	 ? "bounced"
							 : "deferred",
			r->reason, res == STORE_OK && sr[k].quota_warning ? " quota_warning=yes" : "");
	}
	free(sr);
	free(idx);
	free(store);
	return 0;
}
