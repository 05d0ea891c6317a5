/*
 * queue_envelope: the envelope in memory (recipients, counts) and its
 * text encoding, the envelope file's format (docs/storage-format.md,
 * "SMTP queue"). Pure: no I/O. storage/queue_envelope_decode.c reads it
 * back.
 *
 * Values come from the network (addresses, DSN parameters, remote
 * servers' diagnostics), so every value is escaped: bytes outside
 * 0x21..0x7e, and '%', become %XX (uppercase hex). A value therefore
 * never contains a space, a line break or a NUL, and the encoding of an
 * envelope is canonical: one envelope, one byte string.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/queue_envelope_format.h"
#include "storage/store_crc.h"

bool queue_id_valid_len(const char *id, size_t len)
{
	if (len == 0 || len >= QUEUE_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
	}
	return true;
}

bool queue_id_valid(const char *id)
{
	return queue_id_valid_len(id, strnlen(id, QUEUE_ID_MAX));
}

void queue_envelope_clear(struct queue_envelope *env)
{
	free(env->rcpts);
	memset(env, 0, sizeof(*env));
}

int queue_envelope_add_rcpt(struct queue_envelope *env, const char *address, const char *orcpt,
			    unsigned notify)
{
	if (env->nrcpt >= QUEUE_RCPT_MAX)
		return STORE_E_LIMIT;
	if (orcpt == NULL)
		orcpt = "";
	if (strlen(address) >= QUEUE_ADDRESS_MAX || strlen(orcpt) >= QUEUE_ORCPT_MAX ||
	    notify > QUEUE_NOTIFY_ALL)
		return STORE_E_INVALID;
	/* Grow by doubling: the array may reach QUEUE_RCPT_MAX entries. */
	size_t n = env->nrcpt;
	if ((n & (n - 1)) == 0) {
		size_t cap = n == 0 ? 1 : 2 * n;
		struct queue_rcpt *r = realloc(env->rcpts, cap * sizeof(*r));
		if (r == NULL)
			abort();
		env->rcpts = r;
	}
	struct queue_rcpt *r = &env->rcpts[n];
	memset(r, 0, sizeof(*r));
	memcpy(r->address, address, strlen(address) + 1);
	memcpy(r->orcpt, orcpt, strlen(orcpt) + 1);
	r->notify = notify;
	r->state = QUEUE_RCPT_PENDING;
	env->nrcpt = n + 1;
	return STORE_OK;
}

void queue_envelope_count(const struct queue_envelope *env, size_t *pending_r, size_t *delivered_r,
			  size_t *failed_r)
{
	size_t c[3] = {0, 0, 0};
	for (size_t i = 0; i < env->nrcpt; i++)
		if ((unsigned)env->rcpts[i].state < 3)
			c[env->rcpts[i].state]++;
	if (pending_r != NULL)
		*pending_r = c[QUEUE_RCPT_PENDING];
	if (delivered_r != NULL)
		*delivered_r = c[QUEUE_RCPT_DELIVERED];
	if (failed_r != NULL)
		*failed_r = c[QUEUE_RCPT_FAILED];
}

const char *const queue_rcpt_state_names[3] = {"pending", "delivered", "failed"};
const char *const queue_ret_names[3] = {"default", "full", "hdrs"};

bool queue_byte_literal(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '%';
}

/* A fixed-size field: stops at its NUL or at the end of the array, so a
 * caller's unterminated field cannot make us read past it. */
static void put_escaped(struct textbuf *out, const char *s, size_t max)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strnlen(s, max);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (queue_byte_literal(c)) {
			textbuf_putc(out, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			textbuf_append(out, e, 3);
		}
	}
}

static void put_field(struct textbuf *out, const char *key, const char *s, size_t max)
{
	textbuf_printf(out, "%s ", key);
	put_escaped(out, s, max - 1);
	textbuf_putc(out, '\n');
}

#define PUT_FIELD(out, key, field) put_field(out, key, field, sizeof(field))

static const char *name_of(const char *const *names, unsigned n, unsigned v)
{
	/* An out-of-range value encodes as a name decode refuses. */
	return v < n ? names[v] : "invalid";
}

static void put_rcpt(struct textbuf *out, const struct queue_rcpt *r)
{
	textbuf_puts(out, "rcpt address=");
	put_escaped(out, r->address, sizeof(r->address) - 1);
	textbuf_printf(out, " state=%s notify=%u dsn-sent=%d attempts=%u status=",
		       name_of(queue_rcpt_state_names, 3, (unsigned)r->state), r->notify,
		       r->dsn_sent ? 1 : 0, r->attempts);
	put_escaped(out, r->status, sizeof(r->status) - 1);
	textbuf_puts(out, " remote-mta=");
	put_escaped(out, r->remote_mta, sizeof(r->remote_mta) - 1);
	textbuf_puts(out, " orcpt=");
	put_escaped(out, r->orcpt, sizeof(r->orcpt) - 1);
	textbuf_puts(out, " reason=");
	put_escaped(out, r->reason, sizeof(r->reason) - 1);
	textbuf_putc(out, '\n');
}

void queue_envelope_encode(const struct queue_envelope *env, struct textbuf *out)
{
	size_t start = out->len;
	textbuf_printf(out, "%s %d\n", QUEUE_ENVELOPE_MAGIC, QUEUE_ENVELOPE_VERSION);
	PUT_FIELD(out, "id", env->id);
	PUT_FIELD(out, "sender", env->sender);
	PUT_FIELD(out, "envid", env->envid);
	textbuf_printf(out, "ret %s\n", name_of(queue_ret_names, 3, (unsigned)env->ret));
	textbuf_printf(out, "body-8bit %d\nsmtputf8 %d\nhold %d\ndelay-warned %d\n",
		       env->body_8bit ? 1 : 0, env->smtputf8 ? 1 : 0, env->hold ? 1 : 0,
		       env->delay_warned ? 1 : 0);
	textbuf_printf(out, "arrival %lld\nnext-attempt %lld\nattempts %u\n",
		       (long long)env->arrival, (long long)env->next_attempt, env->attempts);
	PUT_FIELD(out, "client", env->client);
	textbuf_printf(out, "size %llu\nrcpts %zu\n", (unsigned long long)env->size, env->nrcpt);
	for (size_t i = 0; i < env->nrcpt; i++)
		put_rcpt(out, &env->rcpts[i]);
	uint32_t crc = store_crc32c(0, out->data + start, out->len - start);
	textbuf_printf(out, "crc32c %08x\n", crc);
}
