/*
 * Listing and showing queued messages (node/queue_report.h is the manual).
 * Memory stays small whatever the queue holds: the ids of one spool at a
 * time (sorted, which is arrival order within a node: ids begin with the
 * time), one envelope at a time, and one counter per destination domain.
 */
#include "node/queue_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/strvec.h"
#include "node/smtp_received.h"

/* Domains shown in the "by destination" line; the rest are summed. */
#define REPORT_DOMAINS_SHOWN 20
/* Bytes of the message header `queue show` prints at most. */
#define REPORT_HEADER_MAX 65536

struct domain_count {
	char *domain;
	size_t count;
};

struct domain_table {
	struct domain_count *slots;
	size_t cap, used;
};

struct report {
	struct store *store;
	struct textbuf *out, *err;
	bool counts;
	int failed;
	size_t messages;
	uint64_t bytes;
	size_t pending, held, failed_rcpts, delivered;
	struct domain_table domains;
	struct textbuf spools; /* "name N, ..." */
	struct strvec ids;     /* of the spool being listed */
};

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void domain_add(struct domain_table *t, const char *domain)
{
	if (t->used * 2 >= t->cap) {
		struct domain_table bigger = { calloc(t->cap ? t->cap * 2 : 64, sizeof(struct domain_count)),
					       t->cap ? t->cap * 2 : 64, t->used };
		if (bigger.slots == NULL)
			abort();
		for (size_t i = 0; i < t->cap; i++) {
			if (t->slots[i].domain == NULL)
				continue;
			size_t k = hash_name(t->slots[i].domain) & (bigger.cap - 1);
			while (bigger.slots[k].domain != NULL)
				k = (k + 1) & (bigger.cap - 1);
			bigger.slots[k] = t->slots[i];
		}
		free(t->slots);
		*t = bigger;
	}
	size_t k = hash_name(domain) & (t->cap - 1);
	while (t->slots[k].domain != NULL && strcmp(t->slots[k].domain, domain) != 0)
		k = (k + 1) & (t->cap - 1);
	if (t->slots[k].domain == NULL) {
		if ((t->slots[k].domain = strdup(domain)) == NULL)
			abort();
		t->used++;
	}
	t->slots[k].count++;
}

static int by_count(const void *a, const void *b)
{
	const struct domain_count *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

static void domains_print(struct domain_table *t, struct textbuf *out)
{
	size_t n = 0, others = 0;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].domain != NULL)
			t->slots[n++] = t->slots[i];
	if (n > 0)
		qsort(t->slots, n, sizeof(*t->slots), by_count);
	textbuf_puts(out, "-- by destination:");
	for (size_t i = 0; i < n; i++) {
		if (i < REPORT_DOMAINS_SHOWN)
			textbuf_printf(out, "%s %s %zu", i ? "," : "", t->slots[i].domain, t->slots[i].count);
		else
			others += t->slots[i].count;
	}
	if (n == 0)
		textbuf_puts(out, " none");
	if (others > 0)
		textbuf_printf(out, ", %zu other domains %zu", n - REPORT_DOMAINS_SHOWN, others);
	textbuf_putc(out, '\n');
	for (size_t i = 0; i < n; i++)
		free(t->slots[i].domain);
	free(t->slots);
	t->slots = NULL;
}

static const char *rcpt_domain(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL && at[1] != '\0' ? at + 1 : "(local)";
}

static void print_message(struct report *r, const struct queue_envelope *env)
{
	char when[32];
	time_t t = (time_t)env->arrival;
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm) == 0)
		snprintf(when, sizeof(when), "%lld", (long long)env->arrival);
	textbuf_printf(r->out, "%-15s%c %8llu %s  %s\n", env->id, env->hold ? '!' : ' ',
		       (unsigned long long)env->size, when,
		       env->sender[0] != '\0' ? env->sender : "MAILER-DAEMON");
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *rc = &env->rcpts[i];
		if (rc->state == QUEUE_RCPT_DELIVERED) {
			r->delivered++;
			continue;
		}
		if (rc->state == QUEUE_RCPT_FAILED)
			r->failed_rcpts++;
		else if (env->hold)
			r->held++;
		else
			r->pending++;
		if (rc->state == QUEUE_RCPT_PENDING && r->counts)
			domain_add(&r->domains, rcpt_domain(rc->address));
		if (rc->reason[0] != '\0' || rc->state == QUEUE_RCPT_FAILED)
			textbuf_printf(r->out, "%*s(%s%s)\n", 10, "",
				       rc->state == QUEUE_RCPT_FAILED ? "failed: " : "",
				       rc->reason[0] != '\0' ? rc->reason : "no reason recorded");
		textbuf_printf(r->out, "%*s%s\n", 41, "", rc->address);
	}
	textbuf_putc(r->out, '\n');
	r->messages++;
	r->bytes += env->size;
}

static bool collect_id(const char *id, void *ctx)
{
	struct report *r = ctx;
	strvec_push(&r->ids, id);
	return true;
}

static bool list_spool(const char *name, void *ctx)
{
	struct report *r = ctx;
	struct queue *q = NULL;
	const char *error = NULL;
	size_t before = r->messages;

	int rc = queue_open(r->store, name, &q, &error);
	if (rc == STORE_OK)
		rc = queue_list(q, collect_id, r, &error);
	if (rc < 0) {
		textbuf_printf(r->err, "spool %s: %s\n", name, error ? error : store_strerror(rc));
		r->failed = 1;
		strvec_free(&r->ids);
		queue_close(&q);
		return true;
	}
	strvec_sort(&r->ids, NULL);
	for (size_t i = 0; i < r->ids.n; i++) {
		struct queue_envelope env = { 0 };
		rc = queue_envelope_read(q, r->ids.v[i], &env, &error);
		if (rc == STORE_OK)
			print_message(r, &env);
		else if (rc != STORE_E_NOTFOUND) {
			textbuf_printf(r->err, "spool %s: %s: %s\n", name, r->ids.v[i],
				       error ? error : store_strerror(rc));
			r->failed = 1;
		}
		queue_envelope_clear(&env);
	}
	strvec_free(&r->ids);
	if (q != NULL)
		queue_close(&q);
	textbuf_printf(&r->spools, "%s %s %zu", r->spools.len ? "," : "", name, r->messages - before);
	return true;
}

int queue_report_list(struct store *store, bool counts, struct textbuf *out, struct textbuf *err)
{
	struct report r = { .store = store, .out = out, .err = err, .counts = counts };
	const char *error = NULL;
	size_t start = out->len;

	/* the heading goes first; taken back when there is no message */
	textbuf_puts(out, "-Queue ID-      --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
	int rc = queue_list_spools(store, list_spool, &r, &error);
	if (rc < 0) {
		textbuf_printf(err, "queue: %s\n", error ? error : store_strerror(rc));
		r.failed = 1;
	}
	if (r.messages == 0) {
		textbuf_truncate(out, start);
		textbuf_puts(out, "Mail queue is empty\n");
	} else {
		textbuf_printf(out, "-- %llu Kbytes in %zu Request%s.\n",
			       (unsigned long long)((r.bytes + 1023) / 1024), r.messages,
			       r.messages == 1 ? "" : "s");
	}
	if (counts) {
		textbuf_printf(out, "-- recipients: %zu pending, %zu held, %zu failed, %zu delivered (not yet removed)\n",
			       r.pending, r.held, r.failed_rcpts, r.delivered);
		domains_print(&r.domains, out);
		textbuf_printf(out, "-- by spool:%s\n", r.spools.len ? textbuf_str(&r.spools) : " none");
	} else {
		free(r.domains.slots);
	}
	textbuf_free(&r.spools);
	strvec_free(&r.ids);
	return r.failed;
}

struct find_ctx {
	struct store *store;
	const char *id;
	struct queue *q;
	struct queue_envelope *env;
	int rc;
	const char *error;
};

static bool find_in_spool(const char *name, void *ctx)
{
	struct find_ctx *f = ctx;
	struct queue *q = NULL;
	int rc = queue_open(f->store, name, &q, &f->error);
	if (rc == STORE_OK)
		rc = queue_envelope_read(q, f->id, f->env, &f->error);
	if (rc == STORE_OK) {
		f->q = q;
		return false;
	}
	queue_envelope_clear(f->env);
	if (q != NULL)
		queue_close(&q);
	if (rc != STORE_E_NOTFOUND)
		f->rc = rc;
	return true;
}

int queue_report_find(struct store *store, const char *id, struct queue **q_r,
		      struct queue_envelope *env_r, const char **error_r)
{
	struct find_ctx f = { .store = store, .id = id, .env = env_r };
	int rc = queue_list_spools(store, find_in_spool, &f, error_r);

	*q_r = f.q;
	if (f.q != NULL)
		return 1;
	if (rc < 0)
		return rc;
	if (f.rc < 0) {
		*error_r = f.error;
		return f.rc;
	}
	return 0;
}

static const char *state_name(enum queue_rcpt_state s)
{
	return s == QUEUE_RCPT_PENDING ? "pending" : s == QUEUE_RCPT_DELIVERED ? "delivered" : "failed";
}

static void show_date(struct textbuf *out, const char *label, int64_t when)
{
	char date[64];
	smtp_received_date((time_t)when, date, sizeof(date));
	textbuf_printf(out, "%s: %s\n", label, date);
}

/* The message header: bytes up to the first empty line, at most
 * REPORT_HEADER_MAX. */
static void show_header(struct queue *q, const char *id, struct textbuf *out, struct textbuf *err)
{
	const char *error = NULL;
	uint64_t size;
	int fd;

	if (queue_message_open(q, id, &fd, &size, &error) < 0) {
		textbuf_printf(err, "%s: message: %s\n", id, error);
		return;
	}
	char *buf = malloc(REPORT_HEADER_MAX);
	ssize_t n = buf != NULL ? pread(fd, buf, REPORT_HEADER_MAX, 0) : -1;
	close(fd);
	if (n < 0) {
		textbuf_printf(err, "%s: cannot read the message\n", id);
		free(buf);
		return;
	}
	size_t len = (size_t)n;
	for (size_t i = 0; i < len; i++) {
		/* an empty line: LF LF or LF CR LF */
		if (buf[i] == '\n' && i + 1 < len &&
		    (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
			len = i + 1;
			break;
		}
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] != '\r')
			textbuf_putc(out, buf[i] == '\0' ? '?' : buf[i]);
	if (len == (size_t)n && len == REPORT_HEADER_MAX)
		textbuf_printf(out, "\n[header longer than %d bytes: cut]\n", REPORT_HEADER_MAX);
	free(buf);
}

int queue_report_show(struct store *store, const char *id, struct textbuf *out, struct textbuf *err)
{
	struct queue_envelope env = { 0 };
	struct queue *q = NULL;
	const char *error = NULL;

	int rc = queue_report_find(store, id, &q, &env, &error);
	if (rc <= 0) {
		textbuf_printf(err, "queue show: %s: %s\n", id,
			       rc == 0 ? "no such message in any spool" : error ? error : store_strerror(rc));
		return 1;
	}
	textbuf_printf(out, "id: %s\nspool: %s\nsender: <%s>\nsize: %llu\n", env.id, queue_name(q),
		       env.sender, (unsigned long long)env.size);
	show_date(out, "arrival", env.arrival);
	if (env.next_attempt > 0)
		show_date(out, "next attempt", env.next_attempt);
	else
		textbuf_puts(out, "next attempt: now\n");
	textbuf_printf(out, "attempts: %u\nhold: %s\nclient: %s\n", env.attempts, env.hold ? "yes" : "no",
		       env.client[0] != '\0' ? env.client : "local");
	if (env.envid[0] != '\0')
		textbuf_printf(out, "envid: %s\n", env.envid);
	if (env.ret != QUEUE_RET_DEFAULT)
		textbuf_printf(out, "ret: %s\n", env.ret == QUEUE_RET_FULL ? "full" : "hdrs");
	for (size_t i = 0; i < env.nrcpt; i++) {
		const struct queue_rcpt *r = &env.rcpts[i];
		textbuf_printf(out, "recipient: <%s> %s attempts=%u", r->address, state_name(r->state),
			       r->attempts);
		if (r->status[0] != '\0')
			textbuf_printf(out, " status=%s", r->status);
		if (r->remote_mta[0] != '\0')
			textbuf_printf(out, " remote=%s", r->remote_mta);
		textbuf_putc(out, '\n');
		if (r->reason[0] != '\0')
			textbuf_printf(out, "  reason: %s\n", r->reason);
	}
	textbuf_puts(out, "\n");
	show_header(q, id, out, err);
	queue_envelope_clear(&env);
	queue_close(&q);
	return 0;
}
