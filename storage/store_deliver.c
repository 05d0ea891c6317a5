/*
 * store_deliver: local delivery of one message to many recipients (SMTP
 * DATA). The message was written once by mail_writer into this node's
 * temporary area; for each recipient the quota is charged and the file is
 * hard-linked into the target mailbox's new/ directory as
 * <guid>.<internal date>.<flags>, followed by *<keyword> for each of the
 * delivery's keywords (one atomic link carries them all, so a crash can
 * never separate a message from its keywords). No index lock is taken: the index absorbs
 * new/ at its next sync (storage/mailbox_absorb.c), on whichever node.
 * Then one group commit covers the file and every link, and only after it
 * does the call return: "250 after DATA" means durable. The temporary
 * name is unlinked last.
 *
 * Every recipient shares the GUID; a recipient named twice for one
 * mailbox gets one copy (the second link finds the first). Filesystems
 * limit the links of one file (ext4: 65,000), and absorbing a delivery
 * needs one more link per recipient for a while, so every
 * DELIVER_LINKS_PER_FILE recipients get a fresh copy of the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/mailbox_name.h"
#include "storage/quota_usage.h"
#include "storage/store_sync.h"

#define DELIVER_LINKS_PER_FILE 16000
/* deliver_one: the mailbox was named before in this delivery (no fd). */
#define DELIVERED_BEFORE INT_MIN

struct deliver_src {
	char name[STORE_GUID_HEX + 16];  /* the temporary file links are made from */
	unsigned links;
	unsigned copies;
};

static int rcpt_fail(struct store_rcpt *r, int code, const char *msg)
{
	r->result = code;
	snprintf(r->error, sizeof(r->error), "%s", msg != NULL ? msg : store_strerror(code));
	return code;
}

/* Links the message into new_fd/new_name: 0 or <0. */
static int link_from(struct mail_writer *w, struct deliver_src *src, int new_fd,
		     const char *new_name, const char **error_r)
{
	int r = -1;
	if (src->links < DELIVER_LINKS_PER_FILE) {
		r = linkat(w->dir_fd, src->name, new_fd, new_name, 0);
		if (r < 0 && errno != EMLINK)
			return store_fail_errno(error_r, false, "link into", "new/");
	}
	if (r < 0) {
		/* A fresh copy to link from; the old one keeps its links. */
		char next[sizeof(src->name)];
		snprintf(next, sizeof(next), "%s.%u", w->name, src->copies + 1);
		int ret = mailbox_copy_file(w->dir_fd, src->name, w->dir_fd, next, error_r);
		if (ret < 0)
			return ret;
		if (src->copies++ > 0)
			unlinkat(w->dir_fd, src->name, 0);
		memcpy(src->name, next, sizeof(next));
		src->links = 0;
		if (linkat(w->dir_fd, src->name, new_fd, new_name, 0) < 0)
			return store_fail_errno(error_r, false, "link into", "new/");
	}
	src->links++;
	return 0;
}

/* Charges the recipient and links the message, both under the counters
 * lock, so that fsck's recount (which holds it) sees both or neither
 * (quota_charge() would take and drop that lock itself). 0, QUOTA, or
 * <0. */
static int charge_and_link(struct store_user *user, struct mail_writer *w,
			   struct deliver_src *src, int new_fd, const char *new_name,
			   struct store_rcpt *r, const char **error_r)
{
	int ret = store_user_lock(user, STORE_LOCK_COUNTERS, error_r);
	if (ret < 0)
		return ret;
	struct quota_counters c;
	ret = quota_counters_read_user(user, &c, error_r);
	const struct store_quota_limit *q = &r->quota;
	uint64_t nb = c.bytes + w->size, nm = c.messages + 1;
	if (ret == 0 && quota_over(q, nb, nm))
		ret = quota_refuse(&c, q, error_r);
	if (ret == 0)
		ret = link_from(w, src, new_fd, new_name, error_r);
	if (ret == 0) {
		r->quota_warning = quota_warns(&c, nb, nm, q);
		c.bytes = nb;
		c.messages = nm;
		if (quota_counters_write_user(user, &c, false, error_r) < 0) {
			unlinkat(new_fd, new_name, 0);
			ret = STORE_E_TEMP;
		}
	}
	store_user_unlock(user, STORE_LOCK_COUNTERS);
	return ret;
}

/* A recipient's mailbox, by its user's path and normalised name (kept in
 * the delivery's names buffer), with a hash to compare first. */
struct box_id {
	uint32_t hash;
	size_t off;
};

/* Whether id names a mailbox earlier recipients of this delivery got the
 * message in (the same mailbox named twice). Asked of the mailbox, not of
 * its new/ entry: an absorb may have taken the entry out meanwhile. */
static bool delivered_here_before(const struct box_id *id, const struct textbuf *names,
				  const struct box_id *earlier, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (earlier[i].hash == id->hash &&
		    strcmp(names->data + earlier[i].off, names->data + id->off) == 0)
			return true;
	return false;
}

/* Links the message into one recipient's mailbox; returns the new/ fd
 * (to sync) or <0 with the recipient's result set. earlier: the mailboxes
 * of the recipients before it that got the message; *id_r: this one's
 * (its name appended to names). */
static int deliver_one(struct store *store, struct mail_writer *w, struct deliver_src *src,
		       const char *new_name, struct store_rcpt *r, struct textbuf *names,
		       const struct box_id *earlier, size_t n_earlier, struct box_id *id_r)
{
	const char *err = NULL;
	struct store_user *user = NULL;
	int ret = store_user_open(store, r->address, &user, &err);
	if (ret < 0)
		return rcpt_fail(r, ret, err);
	char norm[MAILBOX_NAME_MAX + 1];
	int box_fd = -1, new_fd = -1;
	bool repeat = false;
	r->quota_warning = false;
	ret = mailbox_name_normalize(r->mailbox != NULL ? r->mailbox : "INBOX", norm, &err);
	if (ret == 0) {
		id_r->off = names->len;
		textbuf_printf(names, "%s/%s", user->path, norm);
		id_r->hash = store_fnv1a(names->data + id_r->off);
		textbuf_putc(names, '\0');
		repeat = delivered_here_before(id_r, names, earlier, n_earlier);
	}
	if (ret == 0 && !repeat) /* a repeat: one copy, one charge, one sync */
		ret = mailbox_open_box_dir(user, norm, &box_fd, &err);
	if (ret == 0 && !repeat && (new_fd = store_open_dir(box_fd, "new")) < 0)
		ret = store_fail_errno(&err, true, "open", "new/");
	if (box_fd >= 0)
		close(box_fd);
	if (ret == 0 && !repeat)
		ret = charge_and_link(user, w, src, new_fd, new_name, r, &err);
	store_user_close(&user);
	if (ret < 0) {
		if (new_fd >= 0)
			close(new_fd);
		return rcpt_fail(r, ret, err);
	}
	r->result = STORE_OK;
	r->error[0] = '\0';
	return repeat ? DELIVERED_BEFORE : new_fd;
}

/* Undoes the links of a delivery whose commit failed; every recipient
 * that had the message, a repeated mailbox too, fails TEMP. */
static void deliver_undo(struct store *store, struct mail_writer *w, const char *new_name,
			 struct store_rcpt *rcpts, const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i] == DELIVERED_BEFORE)
			rcpt_fail(&rcpts[i], STORE_E_TEMP, "the store could not make the message durable");
		if (fds[i] < 0)
			continue;
		struct store_user *user;
		if (store_user_open(store, rcpts[i].address, &user, NULL) == 0) {
			/* Unlink and give back together, as they were taken. */
			bool locked = store_user_lock(user, STORE_LOCK_COUNTERS, NULL) == 0;
			if (unlinkat(fds[i], new_name, 0) == 0 && locked)
				(void)quota_charge_locked(user, -(int64_t)w->size, -1, NULL, NULL,
							  NULL);
			if (locked)
				store_user_unlock(user, STORE_LOCK_COUNTERS);
			store_user_close(&user);
		} else {
			unlinkat(fds[i], new_name, 0);
		}
		rcpt_fail(&rcpts[i], STORE_E_TEMP, "the store could not make the message durable");
	}
}

int store_deliver(struct store *store, struct mail_writer **wp, const struct store_delivery *d,
		  struct store_rcpt *rcpts, size_t n, const char **error_r)
{
	struct mail_writer *w = *wp;
	if (w == NULL)
		return store_fail(error_r, STORE_E_INVALID, "delivery without a message");
	int64_t date = mail_writer_date(w, d != NULL ? d->internal_date : 0);
	uint32_t flags = d != NULL ? d->flags & MAIL_FLAGS_MASK : 0;
	const char *const *kw = d != NULL ? d->keywords : NULL;
	size_t n_kw = d != NULL ? d->n_keywords : 0;
	char new_name[MAILBOX_NEW_NAME_MAX];
	int ret = mailbox_keywords_check(kw, n_kw, error_r);
	if (ret == 0)
		ret = mail_writer_name(w, error_r); /* the links are made from its name */
	if (ret == 0 && (n_kw > MAILBOX_KEYWORDS_MAX ||
			 mailbox_new_name(w->guid, date, flags, kw, n_kw, new_name) < 0))
		ret = store_fail(error_r, STORE_E_LIMIT, "too many keywords for one delivery");
	if (ret < 0) {
		mail_writer_abort(wp);
		return ret;
	}
	/* fds[0] is the message itself, then one new/ directory per recipient. */
	int *fds = malloc((n + 1) * sizeof(int));
	if (fds == NULL)
		abort();
	fds[0] = w->fd;
	size_t delivered = 0;
	struct deliver_src src = { .links = 0, .copies = 0 };
	memcpy(src.name, w->name, sizeof(w->name));
	struct box_id *boxes = malloc((n + 1) * sizeof(*boxes)); /* of the delivered ones */
	struct textbuf names = TEXTBUF_INIT;
	if (boxes == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		fds[i + 1] = deliver_one(store, w, &src, new_name, &rcpts[i], &names, boxes, delivered,
					 &boxes[delivered]);
		if (fds[i + 1] >= 0)
			delivered++;
	}
	free(boxes);
	textbuf_free(&names);
	if (delivered > 0) {
		int *sync_fds = malloc((delivered + 1) * sizeof(int));
		if (sync_fds == NULL)
			abort();
		size_t k = 0;
		for (size_t i = 0; i <= n; i++)
			if (fds[i] >= 0)
				sync_fds[k++] = fds[i];
		ret = store_sync_wait(store->sync, sync_fds, k, error_r);
		free(sync_fds);
		if (ret < 0)
			deliver_undo(store, w, new_name, rcpts, fds + 1, n);
	}
	for (size_t i = 1; i <= n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	if (src.copies > 0)
		unlinkat(w->dir_fd, src.name, 0);
	mail_writer_abort(wp);
	return ret;
}
