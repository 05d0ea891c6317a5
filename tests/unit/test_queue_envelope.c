/*
 * Unit tests for the queue envelope's encoding (storage/queue_envelope*.c):
 * exact round trips with hostile values (every byte but NUL, maximum
 * lengths, extreme numbers), and corrupt input: every truncation and
 * every flipped byte of a valid encoding is rejected, as are
 * non-canonical and out-of-range values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/textbuf.h"
#include "storage/queue.h"
#include "storage/store_crc.h"

/* Fills field (size bytes with its NUL) with size-1 bytes cycling
 * through 1..255 from start: every byte but NUL appears. */
static void fill_hostile(char *field, size_t size, unsigned start)
{
	for (size_t i = 0; i + 1 < size; i++)
		field[i] = (char)(1 + (start + i) % 255);
	field[size - 1] = '\0';
}

static void assert_rcpt_equal(const struct queue_rcpt *a, const struct queue_rcpt *b)
{
	assert_string_equal(a->address, b->address);
	assert_string_equal(a->orcpt, b->orcpt);
	assert_int_equal(a->notify, b->notify);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->dsn_sent, b->dsn_sent);
	assert_int_equal(a->attempts, b->attempts);
	assert_string_equal(a->status, b->status);
	assert_string_equal(a->remote_mta, b->remote_mta);
	assert_string_equal(a->reason, b->reason);
}

static void assert_envelope_equal(const struct queue_envelope *a, const struct queue_envelope *b)
{
	assert_string_equal(a->id, b->id);
	assert_string_equal(a->sender, b->sender);
	assert_string_equal(a->envid, b->envid);
	assert_int_equal(a->ret, b->ret);
	assert_int_equal(a->body_8bit, b->body_8bit);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->hold, b->hold);
	assert_int_equal(a->delay_warned, b->delay_warned);
	assert_true(a->arrival == b->arrival);
	assert_true(a->next_attempt == b->next_attempt);
	assert_int_equal(a->attempts, b->attempts);
	assert_string_equal(a->client, b->client);
	assert_true(a->size == b->size);
	assert_int_equal(a->nrcpt, b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++)
		assert_rcpt_equal(&a->rcpts[i], &b->rcpts[i]);
}

/* An envelope with every field at its maximum and full of hostile bytes. */
static void make_hostile(struct queue_envelope *env, size_t nrcpt)
{
	memset(env, 0, sizeof(*env));
	memset(env->id, 'Z', QUEUE_ID_MAX - 1);
	fill_hostile(env->sender, sizeof(env->sender), 0);
	fill_hostile(env->envid, sizeof(env->envid), 7);
	fill_hostile(env->client, sizeof(env->client), 200);
	env->ret = QUEUE_RET_HDRS;
	env->body_8bit = env->smtputf8 = env->hold = env->delay_warned = true;
	env->arrival = INT64_MIN;
	env->next_attempt = INT64_MAX;
	env->attempts = UINT32_MAX;
	env->size = UINT64_MAX;
	for (size_t i = 0; i < nrcpt; i++) {
		char addr[QUEUE_ADDRESS_MAX], orcpt[QUEUE_ORCPT_MAX];
		fill_hostile(addr, sizeof(addr), (unsigned)i * 31);
		fill_hostile(orcpt, sizeof(orcpt), (unsigned)i * 31 + 5);
		assert_int_equal(queue_envelope_add_rcpt(env, addr, orcpt, (unsigned)i % 16), 0);
		struct queue_rcpt *r = &env->rcpts[i];
		r->state = (enum queue_rcpt_state)(i % 3);
		r->dsn_sent = i % 2;
		r->attempts = (unsigned)(UINT32_MAX - i);
		fill_hostile(r->status, sizeof(r->status), (unsigned)i);
		fill_hostile(r->remote_mta, sizeof(r->remote_mta), (unsigned)i + 100);
		fill_hostile(r->reason, sizeof(r->reason), (unsigned)i + 50);
	}
}

static void make_simple(struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
	strcpy(env->id, "Q1a2B3c");
	strcpy(env->sender, "alice@example.org");
	strcpy(env->client, "mx.example.org [192.0.2.1]");
	env->arrival = 1700000000;
	env->size = 1234;
	assert_int_equal(queue_envelope_add_rcpt(env, "bob@example.net", "rfc822;bob@example.net",
						 QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY),
			 0);
	assert_int_equal(queue_envelope_add_rcpt(env, "carol@example.com", NULL, 0), 0);
	env->rcpts[1].state = QUEUE_RCPT_FAILED;
	strcpy(env->rcpts[1].status, "5.1.1");
	strcpy(env->rcpts[1].remote_mta, "mx.example.com");
	strcpy(env->rcpts[1].reason, "host said: 550 5.1.1 <carol@example.com>: no such user\r\n");
}

static void roundtrip(const struct queue_envelope *env)
{
	struct textbuf a = TEXTBUF_INIT, b = TEXTBUF_INIT;
	queue_envelope_encode(env, &a);
	/* Exact-size heap copy so ASan catches reads past the end. */
	char *copy = malloc(a.len);
	memcpy(copy, a.data, a.len);
	struct queue_envelope got;
	const char *err = NULL;
	int ret = queue_envelope_decode(copy, a.len, &got, &err);
	if (ret != 0)
		fail_msg("decode: %d %s\n%s", ret, err, a.data);
	assert_envelope_equal(env, &got);
	queue_envelope_encode(&got, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	queue_envelope_clear(&got);
	free(copy);
	textbuf_free(&a);
	textbuf_free(&b);
}

static void test_roundtrip_simple(void **state)
{
	(void)state;
	struct queue_envelope env;
	make_simple(&env);
	roundtrip(&env);
	/* The encoding is text an operator can read. */
	struct textbuf t = TEXTBUF_INIT;
	queue_envelope_encode(&env, &t);
	assert_non_null(
	    strstr(t.data, "clustermail-queue 1\nid Q1a2B3c\nsender alice@example.org\n"));
	assert_non_null(strstr(t.data, "\nclient mx.example.org%20[192.0.2.1]\n"));
	assert_non_null(strstr(t.data, "rcpt address=carol@example.com state=failed notify=0 "));
	assert_non_null(strstr(t.data, "reason=host%20said:%20550%205.1.1%20<carol@example.com>:"
				       "%20no%20such%20user%0D%0A\n"));
	textbuf_free(&t);
	queue_envelope_clear(&env);
	/* The null sender, no recipients, all defaults. */
	memset(&env, 0, sizeof(env));
	strcpy(env.id, "x");
	roundtrip(&env);
}

static void test_roundtrip_hostile(void **state)
{
	(void)state;
	struct queue_envelope env;
	make_hostile(&env, 40);
	roundtrip(&env);
	queue_envelope_clear(&env);
	/* The most recipients an envelope may have. */
	make_hostile(&env, 0);
	for (size_t i = 0; i < QUEUE_RCPT_MAX; i++)
		assert_int_equal(queue_envelope_add_rcpt(&env, "a@b", NULL, 0), 0);
	assert_int_equal(queue_envelope_add_rcpt(&env, "a@b", NULL, 0), STORE_E_LIMIT);
	roundtrip(&env);
	queue_envelope_clear(&env);
}

static void test_add_rcpt_limits(void **state)
{
	(void)state;
	struct queue_envelope env;
	memset(&env, 0, sizeof(env));
	char longer[QUEUE_ORCPT_MAX + 1];
	memset(longer, 'a', QUEUE_ORCPT_MAX);
	longer[QUEUE_ORCPT_MAX] = '\0';
	assert_int_equal(queue_envelope_add_rcpt(&env, "a@b", longer, 0), STORE_E_INVALID);
	longer[QUEUE_ADDRESS_MAX] = '\0';
	assert_int_equal(queue_envelope_add_rcpt(&env, longer, NULL, 0), STORE_E_INVALID);
	assert_int_equal(queue_envelope_add_rcpt(&env, "a@b", NULL, 16), STORE_E_INVALID);
	char orcpt[QUEUE_ORCPT_MAX];
	memset(orcpt, 'o', QUEUE_ORCPT_MAX - 1);
	orcpt[QUEUE_ORCPT_MAX - 1] = '\0';
	longer[QUEUE_ADDRESS_MAX - 1] = '\0';
	assert_int_equal(queue_envelope_add_rcpt(&env, longer, orcpt, 15), 0);
	assert_int_equal(env.nrcpt, 1);
	assert_int_equal(queue_envelope_add_rcpt(&env, "x@y", NULL, 0), 0);
	env.rcpts[0].state = QUEUE_RCPT_DELIVERED;
	size_t p, d, f;
	queue_envelope_count(&env, &p, &d, &f);
	assert_int_equal(p, 1);
	assert_int_equal(d, 1);
	assert_int_equal(f, 0);
	queue_envelope_clear(&env);
	assert_int_equal(env.nrcpt, 0);
	assert_null(env.rcpts);
	assert_true(queue_id_valid("abcXYZ019"));
	assert_false(queue_id_valid(""));
	assert_false(queue_id_valid("a-b"));
	assert_false(queue_id_valid("../etc"));
	assert_false(queue_id_valid("0123456789012345678901234567890123"));
}

static int decode_buf(const char *data, size_t len)
{
	char *copy = malloc(len > 0 ? len : 1);
	memcpy(copy, data, len);
	struct queue_envelope env;
	const char *err = NULL;
	int ret = queue_envelope_decode(copy, len, &env, &err);
	if (ret != 0 && (err == NULL || err[0] == '\0'))
		fail_msg("no error text for %d", ret);
	queue_envelope_clear(&env);
	free(copy);
	return ret;
}

static void test_truncations_and_flips(void **state)
{
	(void)state;
	struct queue_envelope env;
	make_hostile(&env, 3);
	struct textbuf t = TEXTBUF_INIT;
	queue_envelope_encode(&env, &t);
	for (size_t n = 0; n < t.len; n++)
		if (decode_buf(t.data, n) != STORE_E_CORRUPT)
			fail_msg("truncation to %zu of %zu bytes decoded", n, t.len);
	for (size_t i = 0; i < t.len; i++) {
		for (unsigned bit = 1; bit < 256; bit <<= 1) {
			t.data[i] ^= (char)bit;
			if (decode_buf(t.data, t.len) != STORE_E_CORRUPT)
				fail_msg("flip of bit %u of byte %zu decoded", bit, i);
			t.data[i] ^= (char)bit;
		}
	}
	assert_int_equal(decode_buf(t.data, t.len), 0);
	/* Trailing garbage after the checksum line. */
	textbuf_puts(&t, "x\n");
	assert_int_equal(decode_buf(t.data, t.len), STORE_E_CORRUPT);
	textbuf_free(&t);
	queue_envelope_clear(&env);
}

/* Seals body with a correct checksum line, so that only the body's
 * syntax is under test. */
static int decode_sealed(const char *body)
{
	struct textbuf t = TEXTBUF_INIT;
	textbuf_puts(&t, body);
	textbuf_printf(&t, "crc32c %08x\n", store_crc32c(0, body, strlen(body)));
	int ret = decode_buf(t.data, t.len);
	textbuf_free(&t);
	return ret;
}

#define HEAD(id, sender) "clustermail-queue 1\nid " id "\nsender " sender "\nenvid \nret default\n"
#define FLAGS "body-8bit 0\nsmtputf8 0\nhold 0\ndelay-warned 0\n"
#define TIMES(arr) "arrival " arr "\nnext-attempt 0\nattempts 0\nclient \nsize 5\n"
#define RCPT(addr, state, notify, attempts)                                                        \
	"rcpt address=" addr " state=" state " notify=" notify " dsn-sent=0 attempts=" attempts    \
	" status= remote-mta= orcpt= reason=\n"

static void test_syntax_table(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		int want;
	} cases[] = {
	    {HEAD("a1", "s@x") FLAGS TIMES("1") "rcpts 1\n" RCPT("r@y", "pending", "6", "0"), 0},
	    {HEAD("a1", "") FLAGS TIMES("-5") "rcpts 0\n", 0},
	    {HEAD("a1", "%20%25%0A") FLAGS TIMES("0") "rcpts 0\n", 0},
	    /* wrong version, unknown or reordered lines */
	    {"clustermail-queue 2\nid a1\n", STORE_E_CORRUPT},
	    {HEAD("a1",
		  "s") "smtputf8 0\nbody-8bit 0\nhold 0\ndelay-warned 0\n" TIMES("1") "rcpts 0\n",
	     STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 0\nextra 1\n", STORE_E_CORRUPT},
	    /* bad ids */
	    {HEAD("a-1", "s") FLAGS TIMES("1") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("", "s") FLAGS TIMES("1") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("0123456789012345678901234567890123", "s") FLAGS TIMES("1") "rcpts 0\n",
	     STORE_E_CORRUPT},
	    /* escaping: not canonical, NUL, lowercase hex, short, raw space */
	    {HEAD("a1", "%41") FLAGS TIMES("1") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "%00") FLAGS TIMES("1") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "%0a") FLAGS TIMES("1") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "a%2") FLAGS TIMES("1") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "a b") FLAGS TIMES("1") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "a\tb") FLAGS TIMES("1") "rcpts 0\n", STORE_E_CORRUPT},
	    /* numbers */
	    {HEAD("a1", "s") FLAGS TIMES("01") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("-0") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("9223372036854775808") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("-9223372036854775808") "rcpts 0\n", 0},
	    {HEAD("a1", "s") FLAGS TIMES("-9223372036854775809") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("+1") "rcpts 0\n", STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 10001\n", STORE_E_CORRUPT},
	    {HEAD("a1",
		  "s") "body-8bit 2\nsmtputf8 0\nhold 0\ndelay-warned 0\n" TIMES("1") "rcpts 0\n",
	     STORE_E_CORRUPT},
	    /* recipients: count, state, notify, attempts, field order */
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 2\n" RCPT("r@y", "pending", "6", "0"),
	     STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 0\n" RCPT("r@y", "pending", "6", "0"),
	     STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 1\n" RCPT("r@y", "gone", "6", "0"),
	     STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 1\n" RCPT("r@y", "failed", "16", "0"),
	     STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 1\n" RCPT("r@y", "failed", "15", "4294967296"),
	     STORE_E_CORRUPT},
	    {HEAD("a1", "s")
		 FLAGS TIMES("1") "rcpts 1\n" RCPT("r@y", "delivered", "15", "4294967295"),
	     0},
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 1\n"
					      "rcpt state=pending address=r@y notify=0 dsn-sent=0 "
					      "attempts=0 status= remote-mta= "
					      "orcpt= reason=\n",
	     STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 1\n"
					      "rcpt address=r@y state=pending notify=0 dsn-sent=0 "
					      "attempts=0 status= remote-mta= "
					      "orcpt= reason= \n",
	     STORE_E_CORRUPT},
	    {HEAD("a1", "s") FLAGS TIMES("1") "rcpts 1\n"
					      "rcpt address=r@y state=pending notify=0 dsn-sent=0 "
					      "attempts=0 status= remote-mta= "
					      "orcpt=\n",
	     STORE_E_CORRUPT},
	    /* a value one byte over its field: status is 15 bytes at most */
	    {HEAD("a1", "s")
		 FLAGS TIMES("1") "rcpts 1\n"
				  "rcpt address=r@y state=pending notify=0 dsn-sent=0 attempts=0 "
				  "status=0123456789abcdef remote-mta= orcpt= reason=\n",
	     STORE_E_CORRUPT},
	    {HEAD("a1", "s")
		 FLAGS TIMES("1") "rcpts 1\n"
				  "rcpt address=r@y state=pending notify=0 dsn-sent=0 attempts=0 "
				  "status=0123456789abcde remote-mta= orcpt= reason=\n",
	     0},
	    {"", STORE_E_CORRUPT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = decode_sealed(cases[i].body);
		if (got != cases[i].want)
			fail_msg("case %zu: got %d, want %d", i, got, cases[i].want);
	}
	/* No checksum line, a wrong one, a bad hex digit. */
	const char *body = HEAD("a1", "s") FLAGS TIMES("1") "rcpts 0\n";
	assert_int_equal(decode_buf(body, strlen(body)), STORE_E_CORRUPT);
	struct textbuf t = TEXTBUF_INIT;
	textbuf_printf(&t, "%scrc32c %08X\n", body, store_crc32c(0, body, strlen(body)));
	bool upper_differs = strcmp(t.data + strlen(body), "crc32c 00000000\n") != 0;
	if (upper_differs) /* uppercase hex is not canonical */
		assert_int_equal(decode_buf(t.data, t.len), STORE_E_CORRUPT);
	textbuf_free(&t);
}

static void test_long_value_and_line(void **state)
{
	(void)state;
	/* A line longer than the limit, sealed: refused without reading on. */
	struct textbuf b = TEXTBUF_INIT;
	textbuf_puts(&b, HEAD("a1", ""));
	textbuf_truncate(&b, b.len - strlen("envid \nret default\n") - 1);
	for (int i = 0; i < 9000; i++)
		textbuf_putc(&b, 'a');
	textbuf_puts(&b, "\nenvid \nret default\n" FLAGS TIMES("1") "rcpts 0\n");
	assert_int_equal(decode_sealed(b.data), STORE_E_CORRUPT);
	textbuf_free(&b);
	/* A sender of 320 bytes decodes, 321 does not. */
	for (int extra = 0; extra < 2; extra++) {
		textbuf_puts(&b, "clustermail-queue 1\nid a1\nsender ");
		for (int i = 0; i < QUEUE_ADDRESS_MAX - 1 + extra; i++)
			textbuf_puts(&b, "%0A");
		textbuf_puts(&b, "\nenvid \nret default\n" FLAGS TIMES("1") "rcpts 0\n");
		assert_int_equal(decode_sealed(b.data), extra ? STORE_E_CORRUPT : 0);
		textbuf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_simple), cmocka_unit_test(test_roundtrip_hostile),
	    cmocka_unit_test(test_add_rcpt_limits),  cmocka_unit_test(test_truncations_and_flips),
	    cmocka_unit_test(test_syntax_table),     cmocka_unit_test(test_long_value_and_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
