/*
 * store_fsck_rebuild: rebuilding a mailbox index that does not load.
 *
 * What can be trusted is salvaged first: the snapshot if its checksums
 * hold, then the log chain after it, record by record, up to the first
 * one that fails. The message files are the truth about which messages
 * exist (a file's name is its UID): every file keeps its UID and, when
 * the salvaged records know it, its flags, keywords, date and GUID;
 * files the records do not know get a fresh record (no flags, the file's
 * mtime as internal date). Records without a file are dropped (reported
 * by the caller before).
 *
 * UIDVALIDITY stays unless records were lost (a damaged snapshot, or
 * damage in the log before its end): then UIDs or flags that clients saw
 * may not be reproduced, so a new UIDVALIDITY makes them resynchronise.
 * A torn tail (an unacknowledged write) loses nothing. The result is
 * written as a new snapshot and log (index_reset), and the old log ends
 * with a RESET so that sessions that have the mailbox open reload.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"
#include "storage/store_fsck_internal.h"

struct salvage {
	int fd;                  /* the log where salvage stopped, -1 if none */
	uint64_t end;            /* ... and the end of its last good record */
	bool lost;
};

/* Drops records an append that failed half way left behind. */
static void trim_partial(struct index_view *v)
{
	while (v->n_recs > 0 && v->recs[v->n_recs - 1].uid >= v->state.uidnext)
		v->n_recs--;
}

/* Replays log.<seq> from pos, following rotations, as far as it holds. */
static void salvage_chain(struct index_view *v, int box_fd, uint64_t seq, uint64_t pos,
			  bool have_base, struct salvage *s)
{
	for (int hops = 0; hops < 64; hops++) {
		int fd;
		struct index_log_header h;
		if (index_log_open(box_fd, seq, &fd, &h, NULL) < 0) {
			s->lost = true;
			return;
		}
		if (!have_base) {
			v->state = h.state;
			v->uidvalidity = h.uidvalidity;
			have_base = true;
		}
		struct stat st;
		uint8_t *buf = NULL;
		if (h.uidvalidity != v->uidvalidity || fstat(fd, &st) < 0 ||
		    (uint64_t)st.st_size < pos || (buf = malloc((size_t)st.st_size + 1)) == NULL ||
		    store_pread_full(fd, buf, (size_t)st.st_size, 0) < 0) {
			free(buf);
			close(fd);
			s->lost = true;
			return;
		}
		uint64_t size = (uint64_t)st.st_size, off = pos, next_seq = 0, next_pos = 0;
		while (off < size) {
			struct index_rec rec;
			enum index_decode dec = index_rec_decode(buf + off, size - off, &rec, NULL);
			/* Below the synced mark every record was acknowledged:
			 * damage there loses something; past it, it is the torn
			 * tail of a write that never returned. */
			bool acked = off < h.synced;
			if (dec == INDEX_DECODE_SHORT) {
				s->lost |= acked;
				break;
			}
			if (dec != INDEX_DECODE_OK) {
				uint32_t rs = size - off >= 4 ? index_le32(buf + off) : 0;
				bool torn = !acked && rs >= INDEX_REC_HEADER_SIZE && off + rs == size;
				for (uint64_t k = off; !acked && !torn && k < size && buf[k] == 0; k++)
					torn = k + 1 == size;
				s->lost |= !torn;
				break;
			}
			if (index_apply(v, &rec, true, NULL) < 0) {
				trim_partial(v);
				s->lost = true;
				break;
			}
			off += rec.size;
			if (rec.type == INDEX_REC_ROTATE) {
				index_rec_rotate(&rec, &next_seq, &next_pos);
				break;
			}
		}
		free(buf);
		if (next_seq != 0 && next_seq > seq) {
			close(fd);
			seq = next_seq;
			pos = next_pos;
			continue;
		}
		s->fd = fd;
		s->end = off;
		return;
	}
	s->lost = true;
}

static uint64_t highest_log_seq(int box_fd)
{
	int fd = store_open_dir(box_fd, ".");
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	uint64_t max = 0;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		char *end;
		if (strncmp(de->d_name, "log.", 4) != 0)
			continue;
		uint64_t n = strtoull(de->d_name + 4, &end, 10);
		if (*end == '\0' && n > max)
			max = n;
	}
	if (d != NULL)
		closedir(d);
	else if (fd >= 0)
		close(fd);
	return max;
}

/* Rebuilds v's records from the salvaged ones and the files. */
static void merge_files(struct index_view *v, const struct fsck_files *files, bool lost)
{
	uint64_t modseq = v->state.highestmodseq + 1;
	struct mail_record *recs = calloc(files->n + 1, sizeof(*recs));
	if (recs == NULL)
		abort();
	struct index_state st = v->state;
	st.messages = st.unseen = st.recent = st.deleted = 0;
	st.bytes = 0;
	for (size_t i = 0; i < files->n; i++) {
		const struct fsck_file *f = &files->f[i];
		const struct mail_record *old = index_find(v, f->uid);
		struct mail_record *m = &recs[i];
		if (old != NULL) {
			*m = *old;
			m->flags &= MAIL_FLAGS_MASK;
		} else {
			m->uid = f->uid;
			m->modseq = modseq;
			m->internal_date = f->mtime;
			store_guid_new(m->guid);
		}
		m->size = f->size;
		st.messages++;
		st.unseen += !(m->flags & MAIL_SEEN);
		st.deleted += (m->flags & MAIL_DELETED) != 0;
		st.bytes += m->size;
		if (m->uid >= st.uidnext)
			st.uidnext = m->uid + 1;
	}
	/* Records without a file are gone: they vanished now. */
	for (size_t i = 0; i < v->n_recs; i++)
		if (!(v->recs[i].flags & INDEX_DEAD) && fsck_files_find(files, v->recs[i].uid) == NULL) {
			v->van = realloc(v->van, (v->n_van + 1) * sizeof(*v->van));
			if (v->van == NULL)
				abort();
			v->van[v->n_van++] = (struct index_vanished){ v->recs[i].uid, v->recs[i].uid, modseq };
		}
	st.highestmodseq = modseq;
	st.first_recent_uid = st.uidnext;
	free(v->recs);
	v->recs = recs;
	v->n_recs = v->cap_recs = files->n;
	v->n_dead = 0;
	v->state = st;
	if (lost) {
		v->n_van = 0;
		v->van_floor = 0;
		v->n_absorb = 0;
	}
}

int fsck_rebuild(struct fsck *fk, struct store_user *user, int box_fd,
		 const struct fsck_files *files, bool *new_uidvalidity_r, const char **error_r)
{
	struct index_view *v = malloc(sizeof(*v));
	if (v == NULL)
		abort();
	index_view_init(v, true);
	v->store = fk->store;
	v->dir_fd = box_fd;
	struct salvage s = { .fd = -1 };
	struct textbuf sbuf = TEXTBUF_INIT;
	struct index_snap snap;
	int r = index_snapshot_read(box_fd, false, &sbuf, &snap, NULL);
	if (r == 0 && index_load_snapshot(v, &snap, NULL) == 0) {
		salvage_chain(v, box_fd, snap.log_seq, snap.log_offset, true, &s);
	} else if (r == STORE_E_NOTFOUND) {
		salvage_chain(v, box_fd, 1, INDEX_LOG_HEADER_SIZE, false, &s);
	} else {
		index_view_clear(v);
		index_view_init(v, true);
		v->store = fk->store;
		v->dir_fd = box_fd;
		s.lost = true;
	}
	textbuf_free(&sbuf);
	index_compact(v);
	v->deleted = false;
	struct index_state old_state = v->state;
	int ret = 0;
	if (s.lost || v->uidvalidity == 0) {
		s.lost = true;
		ret = store_user_next_uidvalidity(user, &v->uidvalidity, error_r);
	}
	if (ret == 0) {
		merge_files(v, files, s.lost);
		v->log_seq = highest_log_seq(box_fd);
		ret = index_reset(v, s.fd, s.end, &old_state, error_r);
	}
	*new_uidvalidity_r = s.lost;
	if (s.fd >= 0)
		close(s.fd);
	if (v->log_fd >= 0)
		close(v->log_fd);
	index_view_clear(v);
	free(v);
	return ret;
}
