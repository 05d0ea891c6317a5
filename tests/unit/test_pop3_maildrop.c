/*
 * POP3 maildrop tests (node/pop3_maildrop.c) against a real store in a
 * temporary directory: the snapshot (UID order, sizes, UIDL from
 * UIDVALIDITY and UID, stable across sessions), reads by byte range,
 * QUIT's expunge, and two sessions on one INBOX (snapshot semantics: a
 * message removed by the other reads as gone, removing it again is not
 * an error, a message already streaming finishes).
 *
 * The same binary is the integration tests' way to put mail into a store
 * without SMTP (tests/integration/test_pop3*.py):
 *   test_pop3_maildrop --deliver STORE ADDRESS < message   (store_deliver, as SMTP does)
 *   test_pop3_maildrop --fill STORE ADDRESS COUNT SIZE      (COUNT messages of SIZE bytes,
 *                                                            appended 1,000 per durable step)
 * Run as root, it becomes the service user "clustermail" first, as
 * mailctl does, so that every file on the store has one owner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/pop3_maildrop.h"
#include "node/privilege.h"
#include "storage/mailbox.h"
#include "storage/store.h"
#include "test_store_helpers.h"

#define USER "alice@example.test"

struct fixture {
	char *dir;
	struct store *store;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = tstore_mkdtemp();
	f->store = tstore_open(f->dir, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(&f->store);
	tstore_rmrf(&f->dir);
	free(f);
	return 0;
}

static const char *const bodies[] = {
    "Subject: one\r\n\r\nfirst\r\n",
    "Subject: two\r\n\r\n.dotted\r\nsecond\r\n",
    "Subject: three\r\n\r\nthird message, a little longer than the others\r\n",
};

static void deliver(struct store *s, const char *text)
{
	struct mail_writer *w = tstore_writer(s, text);
	struct store_rcpt r = {.address = USER};
	const char *err = NULL;
	assert_int_equal(store_deliver(s, &w, NULL, &r, 1, &err), 0);
	assert_int_equal(r.result, 0);
}

static struct pop3_maildrop *open_md(struct store *s)
{
	struct pop3_maildrop *md = NULL;
	const char *err = NULL;
	int ret = pop3_maildrop_open(s, USER, &md, &err);
	if (ret != 0)
		fail_msg("pop3_maildrop_open: %d %s", ret, err);
	return md;
}

/* Deliveries absorbed together are ordered by second, then by their
 * random GUID: absorbing each one at once gives them UIDs in order. */
static void deliver_in_order(struct store *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		deliver(s, bodies[i]);
		struct pop3_maildrop *md = open_md(s);
		pop3_maildrop_close(&md);
	}
}

/* Reads a whole message in chunks of step bytes. */
static char *read_all(struct pop3_maildrop *md, size_t index, size_t step, ssize_t *rc_r)
{
	static char out[4096];
	uint64_t off = 0;
	const char *err = NULL;
	for (;;) {
		ssize_t n = pop3_maildrop_read(md, index, off, out + off, step, &err);
		if (n <= 0) {
			*rc_r = n;
			out[off] = '\0';
			return out;
		}
		off += (uint64_t)n;
		assert_true(off + step < sizeof(out));
	}
}

static void test_empty(void **state)
{
	struct fixture *f = *state;
	struct pop3_maildrop *md = open_md(f->store);
	size_t n = 99;
	assert_non_null(pop3_maildrop_messages(md, &n));
	assert_int_equal(n, 0);
	assert_int_equal(pop3_maildrop_octets(md), 0);
	size_t removed = 1;
	const char *err = NULL;
	assert_int_equal(pop3_maildrop_commit(md, NULL, 0, &removed, &err), 0);
	assert_int_equal(removed, 0);
	pop3_maildrop_close(&md);
	assert_null(md);
	pop3_maildrop_close(&md); /* no-op */
}

static void test_snapshot_and_uidl(void **state)
{
	struct fixture *f = *state;
	deliver_in_order(f->store, 3);
	struct pop3_maildrop *md = open_md(f->store);
	size_t n;
	const struct pop3_message *m = pop3_maildrop_messages(md, &n);
	assert_int_equal(n, 3);

	struct store_user *u = tstore_user(f->store, USER);
	struct mailbox_status st;
	const char *err = NULL;
	assert_int_equal(mailbox_status(u, "INBOX", &st, &err), 0);
	uint64_t total = 0;
	for (size_t i = 0; i < 3; i++) {
		char want[32];
		snprintf(want, sizeof(want), "%08x%08x", st.uidvalidity, (unsigned)(i + 1));
		assert_string_equal(m[i].uid, want);
		assert_int_equal(m[i].size, strlen(bodies[i]));
		total += m[i].size;
		ssize_t rc;
		for (size_t step = 1; step <= 64; step *= 4)
			assert_string_equal(read_all(md, i, step, &rc), bodies[i]);
		assert_int_equal(rc, 0);
	}
	assert_int_equal(pop3_maildrop_octets(md), total);
	/* reads in any order, at any offset */
	char buf[8];
	assert_int_equal(pop3_maildrop_read(md, 1, 16, buf, 7, &err), 7);
	assert_memory_equal(buf, ".dotted", 7);
	assert_int_equal(pop3_maildrop_read(md, 0, 0, buf, 1, &err), 1);
	assert_int_equal(buf[0], 'S');
	assert_int_equal(pop3_maildrop_read(md, 3, 0, buf, 1, &err), POP3_READ_TEMP);

	/* a delivery after login is not in this session's snapshot... */
	deliver(f->store, "Subject: four\r\n\r\nlate\r\n");
	assert_int_equal(pop3_maildrop_messages(md, &n) != NULL, 1);
	assert_int_equal(n, 3);
	/* ...but in the next one, and the UIDLs of the others did not change */
	struct pop3_maildrop *md2 = open_md(f->store);
	const struct pop3_message *m2 = pop3_maildrop_messages(md2, &n);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(m2[i].uid, m[i].uid);
	pop3_maildrop_close(&md2);
	pop3_maildrop_close(&md);
	store_user_close(&u);
}

static void test_commit(void **state)
{
	struct fixture *f = *state;
	deliver_in_order(f->store, 3);
	struct pop3_maildrop *md = open_md(f->store);
	size_t idx[] = {0, 2, 7 /* out of range: ignored */}, removed = 0;
	const char *err = NULL;
	assert_int_equal(pop3_maildrop_commit(md, idx, 3, &removed, &err), 0);
	assert_int_equal(removed, 2);
	pop3_maildrop_close(&md);

	md = open_md(f->store);
	size_t n;
	const struct pop3_message *m = pop3_maildrop_messages(md, &n);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].size, strlen(bodies[1]));
	ssize_t rc;
	assert_string_equal(read_all(md, 0, 16, &rc), bodies[1]);
	pop3_maildrop_close(&md);

	struct store_user *u = tstore_user(f->store, USER);
	struct store_quota_usage q;
	assert_int_equal(store_quota_get(u, &q, &err), 0);
	assert_int_equal(q.messages, 1);
	assert_int_equal(q.bytes, strlen(bodies[1]));
	store_user_close(&u);
}

static void test_two_sessions(void **state)
{
	struct fixture *f = *state;
	deliver_in_order(f->store, 3);
	struct pop3_maildrop *a = open_md(f->store), *b = open_md(f->store);
	const char *err = NULL;
	char buf[64];

	/* b starts streaming message 2 before a removes it */
	assert_int_equal(pop3_maildrop_read(b, 1, 0, buf, 4, &err), 4);

	size_t idx[] = {0, 1}, removed = 0;
	assert_int_equal(pop3_maildrop_commit(a, idx, 2, &removed, &err), 0);
	assert_int_equal(removed, 2);

	/* message 2 streams to its end; message 1 was not open in b: gone */
	ssize_t n = pop3_maildrop_read(b, 1, 4, buf, sizeof(buf), &err);
	assert_int_equal(n, strlen(bodies[1]) - 4);
	assert_memory_equal(buf, bodies[1] + 4, (size_t)n);
	assert_int_equal(pop3_maildrop_read(b, 1, strlen(bodies[1]), buf, sizeof(buf), &err), 0);
	assert_int_equal(pop3_maildrop_read(b, 0, 0, buf, 1, &err), POP3_READ_GONE);
	/* after its end it is gone for b too */
	assert_int_equal(pop3_maildrop_read(b, 1, 0, buf, 1, &err), POP3_READ_GONE);
	assert_int_equal(pop3_maildrop_read(b, 2, 0, buf, 1, &err), 1);

	/* b deletes 1 (gone already) and 3: only 3 is removed, no error */
	size_t idx_b[] = {0, 2};
	assert_int_equal(pop3_maildrop_commit(b, idx_b, 2, &removed, &err), 0);
	assert_int_equal(removed, 1);
	pop3_maildrop_close(&a);
	pop3_maildrop_close(&b);

	struct pop3_maildrop *c = open_md(f->store);
	size_t count;
	pop3_maildrop_messages(c, &count);
	assert_int_equal(count, 0);
	pop3_maildrop_close(&c);
}

static void test_bad_user(void **state)
{
	struct fixture *f = *state;
	struct pop3_maildrop *md = NULL;
	const char *err = NULL;
	assert_int_equal(pop3_maildrop_open(f->store, "not an address", &md, &err),
			 STORE_E_INVALID);
	assert_null(md);
	assert_non_null(err);
}

/* ---- helper modes for the integration tests ---- */

static int helper_store(const char *root, struct store **s_r)
{
	struct service_identity id;
	const char *error = NULL;
	if (privilege_lookup("clustermail", &id, &error) < 0 || privilege_drop(&id, &error) < 0) {
		fprintf(stderr, "cannot become the service user: %s\n", error);
		return -1;
	}
	struct store_options o = {.node_id = "pop3-test-helper"};
	if (store_open(root, &o, s_r, &error) < 0) {
		fprintf(stderr, "store_open %s: %s\n", root, error);
		return -1;
	}
	return 0;
}

static int helper_deliver(const char *root, const char *address)
{
	struct store *s = NULL;
	struct mail_writer *w = NULL;
	const char *error = NULL;
	char buf[65536];
	size_t n;

	if (helper_store(root, &s) < 0)
		return 1;
	if (mail_writer_create(s, &w, &error) < 0)
		goto fail;
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		if (mail_writer_write(w, buf, n, &error) < 0)
			goto fail;
	struct store_rcpt r = {.address = address};
	if (store_deliver(s, &w, NULL, &r, 1, &error) < 0)
		goto fail;
	store_close(&s);
	if (r.result != 0) {
		fprintf(stderr, "deliver to %s: %s\n", address, r.error);
		return 1;
	}
	return 0;
fail:
	fprintf(stderr, "deliver: %s\n", error);
	mail_writer_abort(&w);
	store_close(&s);
	return 1;
}

/* COUNT messages "Subject: message N" padded with body lines to SIZE bytes. */
static int helper_fill(const char *root, const char *address, unsigned long count,
		       unsigned long size)
{
	enum { BATCH = 1000 };
	struct store *s = NULL;
	struct store_user *u = NULL;
	struct mailbox *box = NULL;
	struct mail_append *batch = calloc(BATCH, sizeof(*batch));
	uint32_t *uids = calloc(BATCH, sizeof(*uids));
	const char *error = NULL;
	int rc = 1;

	if (batch == NULL || uids == NULL || helper_store(root, &s) < 0)
		goto out;
	if (store_user_open(s, address, &u, &error) < 0 ||
	    mailbox_open(u, "INBOX", MAILBOX_OPEN_READONLY, &box, &error) < 0)
		goto out;
	for (unsigned long done = 0; done < count;) {
		size_t k = 0;
		for (; k < BATCH && done + k < count; k++) {
			char head[128];
			int len =
			    snprintf(head, sizeof(head),
				     "From: fill@example.test\r\nSubject: message %lu\r\n\r\n",
				     done + k + 1);
			if (mail_writer_create(s, &batch[k].writer, &error) < 0 ||
			    mail_writer_write(batch[k].writer, head, (size_t)len, &error) < 0)
				goto out;
			/* body lines of at most 80 octets, CRLF-terminated, up to size */
			static const char line[] =
			    "0123456789abcdefghijklmnopqrstuvwxyz"
			    "0123456789abcdefghijklmnopqrstuvwxyz01234567\r\n";
			for (unsigned long left =
				 size > (unsigned long)len ? size - (unsigned long)len : 0;
			     left >= 2;) {
				size_t piece = left < sizeof(line) - 1 ? left : sizeof(line) - 1;
				if (mail_writer_write(batch[k].writer, line, piece - 2, &error) <
					0 ||
				    mail_writer_write(batch[k].writer, "\r\n", 2, &error) < 0)
					goto out;
				left -= piece;
			}
		}
		if (mailbox_append(box, batch, k, NULL, uids, NULL, &error) < 0)
			goto out;
		memset(batch, 0, BATCH * sizeof(*batch));
		done += k;
	}
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "fill: %s\n", error != NULL ? error : "setup failed");
	for (size_t i = 0; batch != NULL && i < BATCH; i++)
		mail_writer_abort(&batch[i].writer);
	mailbox_close(&box);
	store_user_close(&u);
	store_close(&s);
	free(batch);
	free(uids);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--deliver") == 0)
		return helper_deliver(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "--fill") == 0)
		return helper_fill(argv[2], argv[3], strtoul(argv[4], NULL, 10),
				   strtoul(argv[5], NULL, 10));
	if (argc != 1) {
		fprintf(stderr,
			"usage: %s [--deliver STORE ADDRESS < MESSAGE | "
			"--fill STORE ADDRESS COUNT SIZE]\n",
			argv[0]);
		return 2;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_and_uidl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_sessions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_user, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
