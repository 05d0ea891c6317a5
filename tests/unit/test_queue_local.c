/*
 * Unit tests for the queue's local step (node/queue_local.c): a recipient
 * in one of our domains is stored, one elsewhere is left for outbound, and
 * one whose domain the directory cannot look up waits (4.3.0) instead of
 * being routed outbound on a guess. The directory's reads are made to fail
 * by interposing RocksDB's read call.
 */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <rocksdb/c.h>
#include <unistd.h>

#include "node/queue_manager_private.h"
#include "storage/mailbox.h"
#include "storage/store.h"
#include "tests/unit/test_directory_fixture.h"
#include "tests/unit/test_store_helpers.h"

static bool fail_reads;

rocksdb_pinnableslice_t *rocksdb_get_pinned(rocksdb_t *db, const rocksdb_readoptions_t *options,
					    const char *key, size_t keylen, char **errptr)
{
	if (fail_reads) {
		*errptr = strdup("IO error: injected by the test");
		return NULL;
	}
	return ((rocksdb_pinnableslice_t * (*)(rocksdb_t *, const rocksdb_readoptions_t *,
					       const char *, size_t, char **))
			dlsym(RTLD_NEXT, "rocksdb_get_pinned"))(db, options, key, keylen, errptr);
}

struct local_fixture {
	struct fixture *dir;
	char *root;
	struct store *store;
	struct service_env env;
	struct queue_manager qm;
	struct queue_envelope qe;
	int data_fd;
};

static const char message[] = "Subject: local step\r\n\r\nbody\r\n";

static int setup(void **state)
{
	struct local_fixture *f = calloc(1, sizeof(*f));
	const char *error = NULL;
	if (f == NULL || fixture_setup(&f->dir) != 0)
		return -1;
	if (directory_domain_add(f->dir->dir, "example.com", &error) != DIRECTORY_OK)
		return -1;
	struct directory_user u = {.enabled = true};
	snprintf(u.address, sizeof(u.address), "bob@example.com");
	if (directory_user_add(f->dir->dir, &u, &error) != DIRECTORY_OK)
		return -1;
	f->root = tstore_mkdtemp();
	f->store = tstore_open(f->root, 0);
	f->env.dir = f->dir->dir;
	f->env.store = f->store;
	f->qm.env = &f->env;
	snprintf(f->qe.id, sizeof(f->qe.id), "T1");
	snprintf(f->qe.sender, sizeof(f->qe.sender), "alice@example.org");
	char path[512];
	snprintf(path, sizeof(path), "%s/data", f->root);
	f->data_fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (f->data_fd < 0 || write(f->data_fd, message, sizeof(message) - 1) != sizeof(message) - 1)
		return -1;
	f->qe.size = sizeof(message) - 1;
	*state = f;
	return 0;
}

static int teardown_local(void **state)
{
	struct local_fixture *f = *state;
	fail_reads = false;
	close(f->data_fd);
	queue_envelope_clear(&f->qe);
	store_close(&f->store);
	tstore_rmrf(&f->root);
	void *dir_state = f->dir;
	teardown(&dir_state);
	free(f);
	return 0;
}

static uint32_t inbox_messages(struct local_fixture *f)
{
	struct store_user *u = tstore_user(f->store, "bob@example.com");
	struct mailbox_status st;
	const char *err;
	assert_int_equal(mailbox_status(u, "INBOX", &st, &err), 0);
	store_user_close(&u);
	return st.messages;
}

static void test_local_and_remote(void **state)
{
	struct local_fixture *f = *state;
	assert_int_equal(queue_envelope_add_rcpt(&f->qe, "bob@example.com", NULL, 0), 0);
	assert_int_equal(queue_envelope_add_rcpt(&f->qe, "carol@example.net", NULL, 0), 0);
	bool *local = NULL;
	assert_int_equal(qm_local_deliver(&f->qm, &f->qe, f->data_fd, &local), 0);
	assert_non_null(local);
	assert_true(local[0]);
	assert_int_equal(f->qe.rcpts[0].state, QUEUE_RCPT_DELIVERED);
	assert_string_equal(f->qe.rcpts[0].status, "2.0.0");
	assert_false(local[1]);
	assert_int_equal(f->qe.rcpts[1].state, QUEUE_RCPT_PENDING);
	assert_int_equal(f->qe.rcpts[1].attempts, 0);
	free(local);
	assert_int_equal(inbox_messages(f), 1);
}

static void test_directory_failure_defers(void **state)
{
	struct local_fixture *f = *state;
	assert_int_equal(queue_envelope_add_rcpt(&f->qe, "bob@example.com", NULL, 0), 0);
	bool *local = NULL;
	fail_reads = true;
	assert_int_equal(qm_local_deliver(&f->qm, &f->qe, f->data_fd, &local), 0);
	fail_reads = false;
	assert_non_null(local);
	/* not for outbound: it waits for the next attempt */
	assert_true(local[0]);
	struct queue_rcpt *r = &f->qe.rcpts[0];
	assert_int_equal(r->state, QUEUE_RCPT_PENDING);
	assert_string_equal(r->status, "4.3.0");
	assert_non_null(strstr(r->reason, "directory lookup failed"));
	assert_int_equal(r->attempts, 1);
	free(local);
	assert_int_equal(inbox_messages(f), 0);

	/* the next attempt, with the directory back, delivers it */
	assert_int_equal(qm_local_deliver(&f->qm, &f->qe, f->data_fd, &local), 0);
	assert_true(local[0]);
	assert_int_equal(r->state, QUEUE_RCPT_DELIVERED);
	assert_int_equal(r->attempts, 2);
	free(local);
	assert_int_equal(inbox_messages(f), 1);
}

/* team@example.com: bob@example.com (here) and carol@example.net. */
static void add_team_alias(struct local_fixture *f)
{
	const char *error = NULL;
	assert_int_equal(directory_alias_add(f->dir->dir, "team@example.com", "bob@example.com", &error),
			 DIRECTORY_OK);
	assert_int_equal(directory_alias_add(f->dir->dir, "team@example.com", "carol@example.net", &error),
			 DIRECTORY_OK);
}

static void add_remote_rcpts(struct local_fixture *f, int n)
{
	char addr[64];
	for (int i = 0; i < n; i++) {
		snprintf(addr, sizeof(addr), "r%d@example.net", i);
		assert_int_equal(queue_envelope_add_rcpt(&f->qe, addr, NULL, 0), 0);
	}
}

/* An alias whose targets would take the message past the recipient
 * limit fails as a whole (5.5.3), bounced, instead of losing the targets
 * that did not fit. */
static void test_expansion_past_the_limit(void **state)
{
	struct local_fixture *f = *state;
	add_team_alias(f);
	add_remote_rcpts(f, QUEUE_RCPT_MAX - 2);
	assert_int_equal(queue_envelope_add_rcpt(&f->qe, "team@example.com", NULL, 0), 0);
	size_t before = f->qe.nrcpt;
	bool *local = NULL;
	assert_int_equal(qm_local_deliver(&f->qm, &f->qe, f->data_fd, &local), 0);
	struct queue_rcpt *r = &f->qe.rcpts[before - 1];
	assert_int_equal(r->state, QUEUE_RCPT_FAILED);
	assert_string_equal(r->status, "5.5.3");
	assert_int_equal(f->qe.nrcpt, before); /* nothing added */
	free(local);
	assert_int_equal(inbox_messages(f), 0);

	/* with room, the same alias expands */
	queue_envelope_clear(&f->qe);
	snprintf(f->qe.id, sizeof(f->qe.id), "T2");
	f->qe.size = sizeof(message) - 1;
	assert_int_equal(queue_envelope_add_rcpt(&f->qe, "team@example.com", NULL, 0), 0);
	assert_int_equal(qm_local_deliver(&f->qm, &f->qe, f->data_fd, &local), 0);
	assert_int_equal(f->qe.rcpts[0].state, QUEUE_RCPT_DELIVERED);
	assert_int_equal(f->qe.nrcpt, 3);
	assert_string_equal(f->qe.rcpts[2].orcpt, "rfc822;team@example.com");
	free(local);
	assert_int_equal(inbox_messages(f), 1);
}

/* A target that is a recipient already (case aside) is neither added
 * again nor counted against the limit: here the alias fits exactly. */
static void test_expansion_skips_present_recipients(void **state)
{
	struct local_fixture *f = *state;
	add_team_alias(f);
	add_remote_rcpts(f, QUEUE_RCPT_MAX - 3);
	assert_int_equal(queue_envelope_add_rcpt(&f->qe, "BOB@example.com", NULL, 0), 0);
	assert_int_equal(queue_envelope_add_rcpt(&f->qe, "team@example.com", NULL, 0), 0);
	size_t before = f->qe.nrcpt;
	bool *local = NULL;
	assert_int_equal(qm_local_deliver(&f->qm, &f->qe, f->data_fd, &local), 0);
	assert_int_equal(f->qe.nrcpt, QUEUE_RCPT_MAX);
	assert_int_equal(f->qe.rcpts[before - 1].state, QUEUE_RCPT_DELIVERED); /* expanded */
	assert_string_equal(f->qe.rcpts[before].address, "carol@example.net");
	free(local);
	assert_int_equal(inbox_messages(f), 1); /* bob once */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_local_and_remote, setup, teardown_local),
		cmocka_unit_test_setup_teardown(test_directory_failure_defers, setup, teardown_local),
		cmocka_unit_test_setup_teardown(test_expansion_past_the_limit, setup, teardown_local),
		cmocka_unit_test_setup_teardown(test_expansion_skips_present_recipients, setup,
						teardown_local),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
