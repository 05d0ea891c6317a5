/*
 * queue_envelope_decode: reads an envelope file back (the format is in
 * storage/queue_envelope.c and docs/storage-format.md, "SMTP queue").
 *
 * The file is on a shared disk and its values came from the network, so
 * the decoder trusts nothing: the CRC32C of the last line is checked
 * before anything is parsed, then every line must be exactly the one the
 * encoder writes at that place (fixed order, canonical escaping and
 * numbers), with every value within its field's size, every line within
 * QUEUE_ENVELOPE_LINE_MAX and at most QUEUE_RCPT_MAX recipients. Anything
 * else is STORE_E_CORRUPT. Recipients are allocated as their lines are
 * read, never from a count in the file.
 */
#include <stdlib.h>
#include <string.h>

#include "storage/queue_envelope_format.h"
#include "storage/store_crc.h"
#include "storage/store_internal.h"

struct cursor {
	const char *p, *end;
	unsigned line;
	const char *error;
};

#define CRC_LINE_LEN 16 /* "crc32c " 8 hex digits "\n" */

static int corrupt(struct cursor *c, const char *what)
{
	if (c->error == NULL)
		c->error = what;
	return -1;
}

/* The next line without its '\n'; every line ends with one. */
static int next_line(struct cursor *c, const char **line_r, size_t *len_r)
{
	size_t avail = (size_t)(c->end - c->p);
	const char *nl = memchr(
	    c->p, '\n', avail < QUEUE_ENVELOPE_LINE_MAX + 1 ? avail : QUEUE_ENVELOPE_LINE_MAX + 1);
	if (nl == NULL)
		return corrupt(c,
			       avail > QUEUE_ENVELOPE_LINE_MAX ? "line too long" : "missing line");
	*line_r = c->p;
	*len_r = (size_t)(nl - c->p);
	c->p = nl + 1;
	c->line++;
	return 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Unescapes s[0..len) into out (size bytes with the NUL). Only the
 * encoder's canonical form is accepted. */
static int unescape(struct cursor *c, const char *s, size_t len, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '%') {
			int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
			int lo = hi < 0 ? -1 : hexval(s[i + 2]);
			if (lo < 0)
				return corrupt(c, "bad escape");
			ch = (unsigned char)(hi << 4 | lo);
			if (ch == 0 || queue_byte_literal(ch))
				return corrupt(c, "bad escape");
			i += 2;
		} else if (!queue_byte_literal(ch)) {
			return corrupt(c, "unescaped byte in a value");
		}
		if (o + 1 >= size)
			return corrupt(c, "value too long");
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return 0;
}

/* Decimal digits without a superfluous leading zero, at most max. */
static int parse_u64(struct cursor *c, const char *s, size_t len, uint64_t max, uint64_t *v_r)
{
	if (len == 0 || (s[0] == '0' && len > 1))
		return corrupt(c, "bad number");
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return corrupt(c, "bad number");
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return corrupt(c, "number out of range");
		v = v * 10 + d;
	}
	*v_r = v;
	return 0;
}

static int parse_i64(struct cursor *c, const char *s, size_t len, int64_t *v_r)
{
	uint64_t v;
	if (len > 0 && s[0] == '-') {
		/* "-0" is not canonical; INT64_MIN is allowed. */
		if (parse_u64(c, s + 1, len - 1, (uint64_t)INT64_MAX + 1, &v) < 0 || v == 0)
			return corrupt(c, "bad number");
		*v_r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
		return 0;
	}
	if (parse_u64(c, s, len, INT64_MAX, &v) < 0)
		return -1;
	*v_r = (int64_t)v;
	return 0;
}

static int parse_unsigned(struct cursor *c, const char *s, size_t len, unsigned max, unsigned *v_r)
{
	uint64_t v;
	if (parse_u64(c, s, len, max, &v) < 0)
		return -1;
	*v_r = (unsigned)v;
	return 0;
}

static int parse_bool(struct cursor *c, const char *s, size_t len, bool *v_r)
{
	if (len != 1 || (s[0] != '0' && s[0] != '1'))
		return corrupt(c, "bad boolean");
	*v_r = s[0] == '1';
	return 0;
}

static int parse_name(struct cursor *c, const char *s, size_t len, const char *const *names,
		      unsigned n, unsigned *v_r)
{
	for (unsigned i = 0; i < n; i++)
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
			*v_r = i;
			return 0;
		}
	return corrupt(c, "unknown name");
}

/* The next line must be "<key> <value>"; the value (maybe empty) is
 * returned. */
static int expect_line(struct cursor *c, const char *key, const char **val_r, size_t *len_r)
{
	const char *line;
	size_t len, klen = strlen(key);
	if (next_line(c, &line, &len) < 0)
		return -1;
	if (len <= klen || memcmp(line, key, klen) != 0 || line[klen] != ' ')
		return corrupt(c, "unexpected line");
	*val_r = line + klen + 1;
	*len_r = len - klen - 1;
	return 0;
}

/* The next field of a recipient line must be "<key>=<value>" followed
 * by a space, or by the end of the line for the last field. */
static int expect_field(struct cursor *c, const char **s, const char *end, const char *key,
			bool last, const char **val_r, size_t *len_r)
{
	size_t klen = strlen(key);
	const char *p = *s;
	if ((size_t)(end - p) <= klen || memcmp(p, key, klen) != 0 || p[klen] != '=')
		return corrupt(c, "unexpected recipient field");
	p += klen + 1;
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	if (last ? sp != NULL : sp == NULL)
		return corrupt(c, "bad recipient line");
	const char *vend = last ? end : sp;
	*val_r = p;
	*len_r = (size_t)(vend - p);
	*s = last ? end : sp + 1;
	return 0;
}

#define STRING_LINE(c, key, field)                                                                 \
	(expect_line(c, key, &v, &vl) < 0 || unescape(c, v, vl, field, sizeof(field)) < 0)
#define STRING_FIELD(c, s, end, key, last, field)                                                  \
	(expect_field(c, s, end, key, last, &v, &vl) < 0 ||                                        \
	 unescape(c, v, vl, field, sizeof(field)) < 0)

static int decode_rcpt(struct cursor *c, struct queue_rcpt *r)
{
	const char *line, *v;
	size_t len, vl;
	unsigned u;
	bool b;
	if (next_line(c, &line, &len) < 0)
		return -1;
	if (len < 5 || memcmp(line, "rcpt ", 5) != 0)
		return corrupt(c, "expected a recipient");
	const char *s = line + 5, *end = line + len;
	memset(r, 0, sizeof(*r));
	if (STRING_FIELD(c, &s, end, "address", false, r->address))
		return -1;
	if (expect_field(c, &s, end, "state", false, &v, &vl) < 0 ||
	    parse_name(c, v, vl, queue_rcpt_state_names, 3, &u) < 0)
		return -1;
	r->state = (enum queue_rcpt_state)u;
	if (expect_field(c, &s, end, "notify", false, &v, &vl) < 0 ||
	    parse_unsigned(c, v, vl, QUEUE_NOTIFY_ALL, &r->notify) < 0)
		return -1;
	if (expect_field(c, &s, end, "dsn-sent", false, &v, &vl) < 0 ||
	    parse_bool(c, v, vl, &b) < 0)
		return -1;
	r->dsn_sent = b;
	if (expect_field(c, &s, end, "attempts", false, &v, &vl) < 0 ||
	    parse_unsigned(c, v, vl, UINT32_MAX, &r->attempts) < 0)
		return -1;
	if (STRING_FIELD(c, &s, end, "status", false, r->status) ||
	    STRING_FIELD(c, &s, end, "remote-mta", false, r->remote_mta) ||
	    STRING_FIELD(c, &s, end, "orcpt", false, r->orcpt) ||
	    STRING_FIELD(c, &s, end, "reason", true, r->reason))
		return -1;
	return 0;
}

static int decode_header(struct cursor *c, struct queue_envelope *env, uint64_t *nrcpt_r)
{
	const char *line, *v;
	size_t len, vl;
	unsigned u;
	uint64_t n;
	static const char magic[] = QUEUE_ENVELOPE_MAGIC " 1";
	if (next_line(c, &line, &len) < 0)
		return -1;
	if (len != sizeof(magic) - 1 || memcmp(line, magic, len) != 0)
		return corrupt(c, "not a version 1 queue envelope");
	if (STRING_LINE(c, "id", env->id))
		return -1;
	if (!queue_id_valid(env->id))
		return corrupt(c, "bad id");
	if (STRING_LINE(c, "sender", env->sender) || STRING_LINE(c, "envid", env->envid))
		return -1;
	if (expect_line(c, "ret", &v, &vl) < 0 || parse_name(c, v, vl, queue_ret_names, 3, &u) < 0)
		return -1;
	env->ret = (enum queue_ret)u;
	if (expect_line(c, "body-8bit", &v, &vl) < 0 || parse_bool(c, v, vl, &env->body_8bit) < 0 ||
	    expect_line(c, "smtputf8", &v, &vl) < 0 || parse_bool(c, v, vl, &env->smtputf8) < 0 ||
	    expect_line(c, "hold", &v, &vl) < 0 || parse_bool(c, v, vl, &env->hold) < 0 ||
	    expect_line(c, "delay-warned", &v, &vl) < 0 ||
	    parse_bool(c, v, vl, &env->delay_warned) < 0)
		return -1;
	if (expect_line(c, "arrival", &v, &vl) < 0 || parse_i64(c, v, vl, &env->arrival) < 0 ||
	    expect_line(c, "next-attempt", &v, &vl) < 0 ||
	    parse_i64(c, v, vl, &env->next_attempt) < 0 ||
	    expect_line(c, "attempts", &v, &vl) < 0 ||
	    parse_unsigned(c, v, vl, UINT32_MAX, &env->attempts) < 0)
		return -1;
	if (STRING_LINE(c, "client", env->client))
		return -1;
	if (expect_line(c, "size", &v, &vl) < 0 ||
	    parse_u64(c, v, vl, UINT64_MAX, &env->size) < 0 ||
	    expect_line(c, "rcpts", &v, &vl) < 0 || parse_u64(c, v, vl, QUEUE_RCPT_MAX, &n) < 0)
		return -1;
	*nrcpt_r = n;
	return 0;
}

static int check_crc(struct cursor *c, const char *data, size_t len)
{
	if (len < CRC_LINE_LEN || data[len - 1] != '\n' ||
	    (len > CRC_LINE_LEN && data[len - CRC_LINE_LEN - 1] != '\n'))
		return corrupt(c, "no checksum line");
	const char *line = data + len - CRC_LINE_LEN;
	if (memcmp(line, "crc32c ", 7) != 0)
		return corrupt(c, "no checksum line");
	uint8_t be[4];
	if (store_unhex(line + 7, 4, be) < 0)
		return corrupt(c, "bad checksum line");
	uint32_t want =
	    (uint32_t)be[0] << 24 | (uint32_t)be[1] << 16 | (uint32_t)be[2] << 8 | be[3];
	if (store_crc32c(0, data, len - CRC_LINE_LEN) != want)
		return corrupt(c, "checksum mismatch");
	return 0;
}

int queue_envelope_decode(const void *data, size_t len, struct queue_envelope *env_r,
			  const char **error_r)
{
	struct cursor c = {data, (const char *)data, 0, NULL};
	struct queue_envelope env;
	memset(&env, 0, sizeof(env));
	memset(env_r, 0, sizeof(*env_r));
	uint64_t nrcpt = 0;
	if (len > QUEUE_ENVELOPE_FILE_MAX) {
		corrupt(&c, "too large");
		goto fail;
	}
	if (check_crc(&c, data, len) < 0)
		goto fail;
	c.end = (const char *)data + len - CRC_LINE_LEN;
	if (decode_header(&c, &env, &nrcpt) < 0)
		goto fail;
	for (uint64_t i = 0; i < nrcpt; i++) {
		struct queue_rcpt r;
		if (decode_rcpt(&c, &r) < 0)
			goto fail;
		/* Adding cannot fail: nrcpt <= QUEUE_RCPT_MAX and the
		 * fields are bounded by their arrays. */
		if (queue_envelope_add_rcpt(&env, "", NULL, 0) != STORE_OK) {
			corrupt(&c, "too many recipients");
			goto fail;
		}
		env.rcpts[env.nrcpt - 1] = r;
	}
	if (c.p != c.end) {
		corrupt(&c, "trailing lines");
		goto fail;
	}
	*env_r = env;
	return STORE_OK;
fail:
	queue_envelope_clear(&env);
	return store_fail(error_r, STORE_E_CORRUPT, "queue envelope line %u: %s", c.line + 1,
			  c.error);
}
