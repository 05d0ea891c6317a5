/*
 * index_snapshot: the "index" file, a compact image of a mailbox index at
 * one log position. It is only ever replaced whole (written to a
 * temporary name, fsync'd, renamed), so a reader sees the old one or the
 * new one. Light views read only its header, keyword table and absorb
 * set; full views read it all and check the body checksum.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/index_view.h"
#include "storage/store_crc.h"
#include "storage/store_internal.h"

#define SNAP_NAME "index"

void index_snapshot_encode(const struct index_view *v, uint64_t log_seq, uint64_t log_offset,
			   struct textbuf *out)
{
	struct index_snap s;
	memset(&s, 0, sizeof(s));
	s.log_seq = log_seq;
	s.log_offset = log_offset;
	s.uidvalidity = v->uidvalidity;
	s.state = v->state;

	uint8_t hdr[INDEX_SNAP_HEADER_SIZE] = { 0 };
	size_t start = out->len;
	textbuf_append(out, hdr, sizeof(hdr));
	size_t kw_start = out->len;
	for (uint32_t i = 0; i < v->state.keywords; i++)
		textbuf_append(out, v->keywords[i], strlen(v->keywords[i]) + 1);
	s.keyword_bytes = out->len - kw_start;
	static const uint8_t zero[8] = { 0 };
	textbuf_append(out, zero, (8 - s.keyword_bytes % 8) % 8);
	for (size_t i = 0; i < v->n_recs; i++) {
		if (v->recs[i].flags & INDEX_DEAD)
			continue;
		index_put_msg(out, &v->recs[i]);
		s.record_count++;
	}
	/* Keep the newest INDEX_VANISHED_MAX entries; the floor says how far
	 * back the history is complete. */
	size_t skip = v->n_van > INDEX_VANISHED_MAX ? v->n_van - INDEX_VANISHED_MAX : 0;
	s.vanished_floor = v->van_floor;
	for (size_t i = 0; i < skip; i++)
		if (v->van[i].modseq > s.vanished_floor)
			s.vanished_floor = v->van[i].modseq;
	for (size_t i = skip; i < v->n_van; i++) {
		index_put_u32(out, v->van[i].first);
		index_put_u32(out, v->van[i].last);
		index_put_u64(out, v->van[i].modseq);
		s.vanished_count++;
	}
	for (size_t i = 0; i < v->n_absorb; i++)
		textbuf_append(out, v->absorb[i], 16);
	s.absorb_count = (uint32_t)v->n_absorb;
	uint8_t *base = (uint8_t *)out->data + start;
	uint32_t crc = store_crc32c(0, base + INDEX_SNAP_HEADER_SIZE,
				    out->len - start - INDEX_SNAP_HEADER_SIZE);
	index_snap_encode_header(&s, crc, base);
}

static int snap_read_at(int fd, struct textbuf *buf, size_t len, uint64_t off,
			const char **error_r)
{
	size_t start = buf->len;
	if (start + len + 1 > buf->cap) {
		char *p = realloc(buf->data, start + len + 1);
		if (p == NULL)
			abort();
		buf->data = p;
		buf->cap = start + len + 1;
	}
	if (store_pread_full(fd, buf->data + start, len, off) < 0)
		return store_fail_errno(error_r, false, "read", SNAP_NAME);
	buf->len = start + len;
	buf->data[buf->len] = '\0';
	return 0;
}

static int snap_read_header_only(int fd, uint64_t size, struct textbuf *buf,
				 struct index_snap *snap, const char **error_r)
{
	int ret = snap_read_at(fd, buf, INDEX_SNAP_HEADER_SIZE, 0, error_r);
	if (ret < 0)
		return ret;
	ret = index_snap_header_decode((const uint8_t *)buf->data, buf->len, snap, error_r);
	if (ret < 0)
		return ret;
	uint64_t kw = (snap->keyword_bytes + 7) & ~(uint64_t)7;
	uint64_t absorb_off = INDEX_SNAP_HEADER_SIZE + kw +
			      (uint64_t)snap->record_count * INDEX_MSG_SIZE +
			      (uint64_t)snap->vanished_count * INDEX_VANISHED_SIZE;
	if (absorb_off + (uint64_t)snap->absorb_count * 16 != size)
		return store_fail(error_r, STORE_E_CORRUPT, "snapshot size does not match its header");
	if ((ret = snap_read_at(fd, buf, (size_t)kw, INDEX_SNAP_HEADER_SIZE, error_r)) < 0 ||
	    (ret = snap_read_at(fd, buf, (size_t)snap->absorb_count * 16, absorb_off, error_r)) < 0)
		return ret;
	const uint8_t *p = (const uint8_t *)buf->data + INDEX_SNAP_HEADER_SIZE;
	if (index_snap_keywords_check(p, snap->keyword_bytes, snap->state.keywords) < 0)
		return store_fail(error_r, STORE_E_CORRUPT, "bad keyword table in snapshot");
	snap->keywords = p;
	snap->records = NULL;
	snap->vanished = NULL;
	snap->absorb = p + kw;
	return 0;
}

int index_snapshot_read(int dir_fd, bool header_only, struct textbuf *buf,
			struct index_snap *snap, const char **error_r)
{
	int fd = openat(dir_fd, SNAP_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return store_fail_errno(error_r, true, "open", SNAP_NAME);
	struct stat st;
	int ret;
	textbuf_truncate(buf, 0);
	if (fstat(fd, &st) < 0) {
		ret = store_fail_errno(error_r, false, "stat", SNAP_NAME);
	} else if ((uint64_t)st.st_size > (uint64_t)64 * INDEX_REC_MAX) {
		ret = store_fail(error_r, STORE_E_CORRUPT, "snapshot of %lld bytes",
				 (long long)st.st_size);
	} else if (header_only) {
		ret = snap_read_header_only(fd, (uint64_t)st.st_size, buf, snap, error_r);
	} else {
		ret = snap_read_at(fd, buf, (size_t)st.st_size, 0, error_r);
		if (ret == 0)
			ret = index_snap_decode((const uint8_t *)buf->data, buf->len, snap, error_r);
	}
	close(fd);
	return ret;
}

int index_snapshot_read_header(int dir_fd, struct textbuf *buf, struct index_snap *snap)
{
	int fd = openat(dir_fd, SNAP_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? STORE_E_NOTFOUND : STORE_E_TEMP;
	textbuf_truncate(buf, 0);
	int ret = snap_read_at(fd, buf, INDEX_SNAP_HEADER_SIZE, 0, NULL);
	if (ret == 0)
		ret = index_snap_header_decode((const uint8_t *)buf->data, buf->len, snap, NULL);
	close(fd);
	return ret;
}
