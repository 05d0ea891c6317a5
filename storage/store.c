/*
 * store: opening and closing the mail store, and this node's temporary
 * area <store>/mail/.tmp/<node>/<slot>/ where messages are written before
 * they are linked into mailboxes. File creation is the expensive
 * metadata operation on most filesystems and it serialises on the
 * directory, so concurrent writers are spread over STORE_TMP_SLOTS
 * directories (one per thread, round robin); each node has its own area
 * so that nodes of a cluster filesystem never contend for one directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/mailbox_name.h"
#include "storage/store_internal.h"
#include "storage/store_sync.h"

static _Thread_local int store_thread_slot = -1;

int store_open(const char *root, const struct store_options *opts, struct store **store_r,
	       const char **error_r)
{
	struct store_options defaults;
	memset(&defaults, 0, sizeof(defaults));
	if (opts == NULL)
		opts = &defaults;
	char node[256];
	if (opts->node_id != NULL) {
		snprintf(node, sizeof(node), "%s", opts->node_id);
	} else if (gethostname(node, sizeof(node)) < 0) {
		return store_fail_errno(error_r, false, "gethostname", "");
	}
	node[sizeof(node) - 1] = '\0';
	char node_enc[MAILBOX_COMPONENT_ENC_MAX + 1];
	if (mailbox_name_encode(node, strlen(node), node_enc) < 0)
		return store_fail(error_r, STORE_E_INVALID, "bad node id \"%s\"", node);

	int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		return store_fail_errno(error_r, true, "open store", root);
	int mail_fd = -1, tmp_fd = -1, dot_fd = -1;
	if (store_mkdirat(root_fd, "mail") < 0 || (mail_fd = store_open_dir(root_fd, "mail")) < 0 ||
	    store_mkdirat(mail_fd, ".tmp") < 0 || (dot_fd = store_open_dir(mail_fd, ".tmp")) < 0 ||
	    store_mkdirat(dot_fd, node_enc) < 0 || (tmp_fd = store_open_dir(dot_fd, node_enc)) < 0) {
		int ret = store_fail_errno(error_r, false, "create", "store directories");
		close(root_fd);
		if (mail_fd >= 0)
			close(mail_fd);
		if (dot_fd >= 0)
			close(dot_fd);
		return ret;
	}
	close(root_fd);
	close(dot_fd);

	struct store *s = calloc(1, sizeof(*s));
	if (s == NULL)
		abort();
	s->root = strdup(root);
	s->node_id = strdup(node_enc);
	if (s->root == NULL || s->node_id == NULL)
		abort();
	s->opts = *opts;
	s->opts.node_id = s->node_id;
	s->mail_fd = mail_fd;
	s->tmp_fd = tmp_fd;
	pthread_mutex_init(&s->tmp_lock, NULL);
	for (unsigned i = 0; i < STORE_TMP_SLOTS; i++)
		s->tmp_slot_fd[i] = -1;
	s->sync = store_sync_create(mail_fd, opts->sync_mode);
	*store_r = s;
	return 0;
}

void store_close(struct store **sp)
{
	struct store *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	for (unsigned i = 0; i < STORE_TMP_SLOTS; i++) {
		if (s->tmp_slot_fd[i] < 0)
			continue;
		close(s->tmp_slot_fd[i]);
		char name[16];
		snprintf(name, sizeof(name), "%u", i);
		if (s->opts.transient) /* fails, as it should, when something was left */
			(void)unlinkat(s->tmp_fd, name, AT_REMOVEDIR);
	}
	close(s->tmp_fd);
	int dot_fd = s->opts.transient ? store_open_dir(s->mail_fd, ".tmp") : -1;
	if (dot_fd >= 0) {
		(void)unlinkat(dot_fd, s->node_id, AT_REMOVEDIR);
		close(dot_fd);
	}
	close(s->mail_fd);
	store_sync_destroy(&s->sync);
	pthread_mutex_destroy(&s->tmp_lock);
	free(s->root);
	free(s->node_id);
	free(s);
}

int store_tmp_dir(struct store *store, unsigned *slot_r, const char **error_r)
{
	pthread_mutex_lock(&store->tmp_lock);
	if (store_thread_slot < 0)
		store_thread_slot = (int)(store->tmp_next_slot++ % STORE_TMP_SLOTS);
	unsigned slot = (unsigned)store_thread_slot;
	int fd = store->tmp_slot_fd[slot];
	if (fd < 0) {
		char name[16];
		snprintf(name, sizeof(name), "%u", slot);
		if (store_mkdirat(store->tmp_fd, name) == 0)
			fd = store_open_dir(store->tmp_fd, name);
		if (fd < 0) {
			pthread_mutex_unlock(&store->tmp_lock);
			return store_fail_errno(error_r, false, "create", "temporary directory");
		}
		store->tmp_slot_fd[slot] = fd;
	}
	pthread_mutex_unlock(&store->tmp_lock);
	*slot_r = slot;
	return fd;
}
