/*
 * mailbox_status: STATUS without opening the mailbox. Every log record
 * ends with its size and carries the mailbox state after it, so the state
 * is in the last record before the log's synced mark: read the snapshot
 * header (to find the current log), the synced mark, and that one record;
 * follow a ROTATE to the next log. A few hundred bytes, whatever the
 * mailbox's size. Pending deliveries are absorbed first (so that STATUS
 * counts them), which takes the index lock only when there are any. When
 * the quick path meets anything unusual (a rotation racing it, damage) it
 * falls back to opening a light view, which reports errors properly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/mailbox_name.h"

#define STATUS_HOPS 4

/* Decodes the record that ends at synced; 0, 1 = ROTATE to *next_r, -1. */
static int last_record(int fd, uint64_t synced, struct index_state *st, uint64_t *next_r)
{
	uint8_t tr[8];
	if (synced < INDEX_LOG_HEADER_SIZE + INDEX_REC_HEADER_SIZE + INDEX_REC_TRAILER_SIZE ||
	    store_pread_full(fd, tr, sizeof(tr), synced - 8) < 0)
		return -1;
	uint32_t size = index_le32(tr);
	if (size > synced - INDEX_LOG_HEADER_SIZE || size > INDEX_REC_MAX)
		return -1;
	uint8_t *buf = malloc(size);
	if (buf == NULL)
		abort();
	struct index_rec r;
	int ret = -1;
	if (store_pread_full(fd, buf, size, synced - size) == 0 &&
	    index_rec_decode(buf, size, &r, NULL) == INDEX_DECODE_OK && r.type != INDEX_REC_DELETED &&
	    !(r.type == INDEX_REC_ROTATE && (r.flags & INDEX_ROTATE_RESET))) {
		*st = r.state;
		ret = 0;
		if (r.type == INDEX_REC_ROTATE) {
			uint64_t off;
			index_rec_rotate(&r, next_r, &off);
			ret = 1;
		}
	}
	free(buf);
	return ret;
}

/* The state at the synced mark of log.<seq>; 1 = follow *next_r. */
static int log_state(int dir_fd, uint64_t seq, struct index_state *st, uint32_t *uidvalidity_r,
		     uint64_t *next_r)
{
	int fd;
	struct index_log_header h;
	if (index_log_open(dir_fd, seq, &fd, &h, NULL) < 0)
		return -1;
	uint64_t synced;
	int ret = -1;
	if (index_log_synced(fd, &synced, NULL) == 0) {
		*uidvalidity_r = h.uidvalidity;
		if (synced == INDEX_LOG_HEADER_SIZE) {
			*st = h.state;
			ret = 0;
		} else {
			ret = last_record(fd, synced, st, next_r);
		}
	}
	close(fd);
	return ret;
}

static int quick_status(int dir_fd, struct mailbox_status *st_r)
{
	struct textbuf buf = TEXTBUF_INIT;
	struct index_snap snap;
	uint64_t seq = 1;
	int sret = index_snapshot_read_header(dir_fd, &buf, &snap);
	textbuf_free(&buf);
	if (sret == 0)
		seq = snap.log_seq;
	else if (sret != STORE_E_NOTFOUND)
		return -1;
	struct index_state st;
	uint32_t uidvalidity;
	for (int hop = 0; hop < STATUS_HOPS; hop++) {
		uint64_t next = 0;
		int ret = log_state(dir_fd, seq, &st, &uidvalidity, &next);
		if (ret < 0)
			return -1;
		if (ret == 1) {
			seq = next;
			continue;
		}
		st_r->messages = st.messages;
		st_r->recent = st.recent;
		st_r->unseen = st.unseen;
		st_r->deleted = st.deleted;
		st_r->uidnext = st.uidnext;
		st_r->uidvalidity = uidvalidity;
		st_r->highestmodseq = st.highestmodseq;
		st_r->bytes = st.bytes;
		return 0;
	}
	return -1;
}

int mailbox_status(struct store_user *user, const char *name, struct mailbox_status *st_r,
		   const char **error_r)
{
	char norm[MAILBOX_NAME_MAX + 1];
	int ret = mailbox_name_normalize(name, norm, error_r);
	if (ret < 0)
		return ret;
	int dir_fd;
	if ((ret = mailbox_open_box_dir(user, norm, &dir_fd, error_r)) < 0)
		return ret;
	int new_fd = store_open_dir(dir_fd, "new");
	struct mailbox probe;
	memset(&probe, 0, sizeof(probe));
	probe.new_fd = new_fd;
	bool pending = new_fd >= 0 && mailbox_new_pending(&probe);
	if (new_fd >= 0)
		close(new_fd);
	if (!pending && quick_status(dir_fd, st_r) == 0) {
		close(dir_fd);
		return 0;
	}
	close(dir_fd);
	struct mailbox *box;
	ret = mailbox_open(user, norm, MAILBOX_OPEN_APPEND_ONLY | MAILBOX_OPEN_READONLY, &box, error_r);
	if (ret < 0)
		return ret;
	mailbox_get_status(box, st_r);
	mailbox_close(&box);
	return 0;
}
