/*
 * pop3_maildrop: a POP3 session's snapshot of an INBOX and the store calls
 * behind it (the contract is in node/pop3_maildrop.h).
 *
 * The INBOX is opened read-only in the IMAP sense (MAILBOX_OPEN_READONLY:
 * no \Recent is claimed, so a login writes nothing unless deliveries are
 * waiting to be absorbed, and IMAP clients still see new mail as recent);
 * expunging needs no more than that. The mailbox view stays open for the
 * session: message files are found through it, and it is what QUIT
 * expunges from. It is never synced in between, which is what makes it a
 * snapshot.
 */
#include "node/pop3_maildrop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/mail_uidset.h"
#include "storage/mailbox.h"
#include "storage/store.h"

struct pop3_maildrop {
	struct store_user *user;
	struct mailbox *box;
	struct pop3_message *msgs;
	uint32_t *uids;
	size_t count;
	uint64_t octets;
	/* The message being streamed: its file stays open between chunks. */
	int fd;
	size_t fd_index;
};

static void maildrop_free(struct pop3_maildrop *md)
{
	if (md->fd >= 0)
		close(md->fd);
	mailbox_close(&md->box);
	store_user_close(&md->user);
	free(md->msgs);
	free(md->uids);
	free(md);
}

int pop3_maildrop_open(struct store *store, const char *user, struct pop3_maildrop **md_r,
		       const char **error_r)
{
	struct pop3_maildrop *md = calloc(1, sizeof(*md));
	if (md == NULL) {
		*error_r = "out of memory";
		return STORE_E_TEMP;
	}
	md->fd = -1;
	int ret = store_user_open(store, user, &md->user, error_r);
	if (ret == 0)
		ret = mailbox_open(md->user, "INBOX", MAILBOX_OPEN_READONLY, &md->box, error_r);
	if (ret < 0) {
		maildrop_free(md);
		return ret;
	}
	struct mailbox_status st;
	size_t n;
	const struct mail_record *recs = mailbox_records(md->box, &n);
	mailbox_get_status(md->box, &st);
	md->msgs = calloc(n ? n : 1, sizeof(*md->msgs));
	md->uids = calloc(n ? n : 1, sizeof(*md->uids));
	if (md->msgs == NULL || md->uids == NULL) {
		maildrop_free(md);
		*error_r = "out of memory";
		return STORE_E_TEMP;
	}
	for (size_t i = 0; i < n; i++) {
		md->uids[i] = recs[i].uid;
		md->msgs[i].size = recs[i].size;
		snprintf(md->msgs[i].uid, sizeof(md->msgs[i].uid), "%08x%08x", st.uidvalidity,
			 recs[i].uid);
		md->octets += recs[i].size;
	}
	md->count = n;
	*md_r = md;
	return 0;
}

const struct pop3_message *pop3_maildrop_messages(const struct pop3_maildrop *md, size_t *count_r)
{
	*count_r = md->count;
	return md->msgs;
}

uint64_t pop3_maildrop_octets(const struct pop3_maildrop *md)
{
	return md->octets;
}

ssize_t pop3_maildrop_read(struct pop3_maildrop *md, size_t index, uint64_t offset, void *buf,
			   size_t len, const char **error_r)
{
	if (index >= md->count) {
		*error_r = "message number out of range";
		return POP3_READ_TEMP;
	}
	if (md->fd < 0 || md->fd_index != index) {
		if (md->fd >= 0)
			close(md->fd);
		md->fd = -1;
		uint64_t size;
		int ret = mailbox_msg_open(md->box, md->uids[index], &md->fd, &size, error_r);
		if (ret == STORE_E_EXPUNGED || ret == STORE_E_NOTFOUND)
			return POP3_READ_GONE;
		if (ret < 0)
			return POP3_READ_TEMP;
		md->fd_index = index;
	}
	ssize_t n;
	do
		n = pread(md->fd, buf, len, (off_t)offset);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		*error_r = strerror(errno);
		return POP3_READ_TEMP;
	}
	if (n == 0) {
		/* the end: nothing more will be read from this one */
		close(md->fd);
		md->fd = -1;
	}
	return n;
}

int pop3_maildrop_commit(struct pop3_maildrop *md, const size_t *indexes, size_t count,
			 size_t *removed_r, const char **error_r)
{
	struct uidset uids = UIDSET_INIT, removed = UIDSET_INIT;

	*removed_r = 0;
	for (size_t i = 0; i < count; i++)
		if (indexes[i] < md->count)
			uidset_add(&uids, md->uids[indexes[i]]);
	if (md->fd >= 0) {
		close(md->fd);
		md->fd = -1;
	}
	int ret =
	    uidset_empty(&uids) ? 0 : mailbox_expunge(md->box, &uids, true, &removed, error_r);
	if (ret == 0)
		*removed_r = (size_t)uidset_count(&removed);
	uidset_free(&uids);
	uidset_free(&removed);
	return ret;
}

void pop3_maildrop_close(struct pop3_maildrop **mdp)
{
	if (mdp == NULL || *mdp == NULL)
		return;
	maildrop_free(*mdp);
	*mdp = NULL;
}
