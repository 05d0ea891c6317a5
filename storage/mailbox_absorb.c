/*
 * mailbox_absorb: turning deliveries waiting in new/ into index records.
 *
 * store_deliver links each message into <mailbox>/new/<guid>.<date>.<flags>
 * (then *<keyword> for each keyword of the delivery, '/' written %2F)
 * without touching the index. Whoever syncs the mailbox next, on any node,
 * absorbs them under the index lock:
 *   1. each new entry gets the next UID and is hard-linked to msg/<b>/<uid>
 *      (a stale file at that name, left by a crashed writer, is replaced);
 *   2. one APPEND record with the ABSORBED flag is written; it lists the
 *      new GUIDs and "carries" those of entries from an earlier absorb that
 *      are still in new/;
 *   3. after the unlock, a group commit makes links and record durable;
 *   4. only then are the new/ entries unlinked.
 * A crash before 2 leaves new/ as it was (the stale links are replaced
 * later); after 2 the entries are in the record's absorb set, so the next
 * absorber knows they are done: it checks that each one's record still
 * has its msg/ link (a power failure can keep the record and lose the
 * link), links it again from the entry if not, and unlinks the entries
 * after its own commit (in case the record was never made durable). A
 * light view, without the records, leaves such entries to a full one. No
 * delivery is lost or absorbed twice.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/mailbox_internal.h"

struct absorb_entry {
	char name[MAILBOX_NEW_NAME_MAX];
	uint8_t guid[16];
	int64_t date;
	uint32_t flags;
	uint64_t keywords;    /* mask, set under the lock before the record */
	bool has_keywords;
	bool keep;            /* a leftover a light view cannot check: carried, not unlinked */
};

struct absorb_list {
	struct absorb_entry *e;
	size_t n, cap;
};

int mailbox_new_name(const uint8_t guid[16], int64_t date, uint32_t flags,
		     const char *const *keywords, size_t n_keywords, char *out)
{
	char hex[STORE_GUID_HEX];
	store_hex(guid, 16, hex);
	int len = snprintf(out, MAILBOX_NEW_NAME_MAX, "%s.%" PRId64 ".%x", hex, date,
			   flags & MAIL_FLAGS_MASK);
	size_t k = (size_t)len;
	for (size_t i = 0; i < n_keywords; i++) {
		if (k + 1 >= MAILBOX_NEW_NAME_MAX)
			return -1;
		out[k++] = '*';
		for (const char *c = keywords[i]; *c != '\0'; c++) {
			const char *put = *c == '/' ? "%2F" : NULL;
			size_t plen = put != NULL ? 3 : 1;
			if (k + plen >= MAILBOX_NEW_NAME_MAX)
				return -1;
			memcpy(out + k, put != NULL ? put : c, plen);
			k += plen;
		}
	}
	out[k] = '\0';
	return 0;
}

int mailbox_new_keywords(const char *encoded, char buf[MAILBOX_NEW_NAME_MAX],
			 const char *names[MAILBOX_KEYWORDS_MAX])
{
	int n = 0;
	size_t k = 0;
	const char *p = encoded;
	while (*p == '*') {
		if (n == MAILBOX_KEYWORDS_MAX)
			return -1;
		p++;
		size_t start = k;
		while (*p != '\0' && *p != '*') {
			char c = *p;
			if (c == '%') {
				if (strncmp(p, "%2F", 3) != 0)
					return -1;
				c = '/';
				p += 2;
			}
			if (k + 1 >= MAILBOX_NEW_NAME_MAX)
				return -1;
			buf[k++] = c;
			p++;
		}
		if (!index_keyword_valid(buf + start, k - start))
			return -1;
		buf[k++] = '\0';
		names[n++] = buf + start;
	}
	return *p == '\0' ? n : -1;
}

int mailbox_new_parse(const char *name, uint8_t guid[16], int64_t *date_r, uint32_t *flags_r,
		      const char **keywords_r)
{
	if (strlen(name) < 36 || strlen(name) >= MAILBOX_NEW_NAME_MAX || name[32] != '.' ||
	    store_unhex(name, 16, guid) < 0)
		return -1;
	const char *p = name + 33;
	char *end;
	errno = 0;
	long long date = strtoll(p, &end, 10);
	if (errno != 0 || end == p || *end != '.' || (*p != '-' && (*p < '0' || *p > '9')))
		return -1;
	p = end + 1;
	unsigned long flags = strtoul(p, &end, 16);
	if (end == p || (*end != '\0' && *end != '*') || *p == '-' || *p == '+' ||
	    flags > MAIL_FLAGS_MASK)
		return -1;
	char kwbuf[MAILBOX_NEW_NAME_MAX];
	const char *kw[MAILBOX_KEYWORDS_MAX];
	int nkw = mailbox_new_keywords(end, kwbuf, kw);
	if (nkw < 0)
		return -1;
	char again[MAILBOX_NEW_NAME_MAX];
	if (mailbox_new_name(guid, date, (uint32_t)flags, kw, (size_t)nkw, again) < 0 ||
	    strcmp(again, name) != 0)
		return -1;
	*date_r = date;
	*flags_r = (uint32_t)flags;
	if (keywords_r != NULL)
		*keywords_r = end;
	return 0;
}

static DIR *open_new(struct mailbox *box)
{
	return store_opendir(box->new_fd, ".");
}

bool mailbox_new_pending(struct mailbox *box)
{
	DIR *d = open_new(box);
	if (d == NULL)
		return false;
	struct dirent *de;
	bool found = false;
	while (!found && (de = readdir(d)) != NULL)
		found = de->d_name[0] != '.';
	closedir(d);
	return found;
}

static void list_add(struct absorb_list *l, const struct absorb_entry *e)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct absorb_entry *p = realloc(l->e, cap * sizeof(*p));
		if (p == NULL)
			abort();
		l->e = p;
		l->cap = cap;
	}
	l->e[l->n++] = *e;
}

/* UIDs in the order of arrival: the date (seconds), then the name, which
 * begins with the GUID, whose first half is its creation time in ns
 * (deliveries within one second keep their order). Not the entry's ctime:
 * the inode of a delivery to several mailboxes changes with every link
 * and unlink of it anywhere. */
static int entry_cmp(const void *a, const void *b)
{
	const struct absorb_entry *x = a, *y = b;
	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int link_entry(struct mailbox *box, const char *name, uint32_t uid, uint64_t *size_r,
		      const char **error_r);

/* The live record of guid in a full view, or NULL. */
static const struct mail_record *live_record(const struct index_view *v, const uint8_t guid[16])
{
	for (size_t i = 0; i < v->n_recs; i++)
		if (!(v->recs[i].flags & INDEX_DEAD) && memcmp(v->recs[i].guid, guid, 16) == 0)
			return &v->recs[i];
	return NULL;
}

/* A leftover of an earlier absorb (its GUID is in the absorb set) may be
 * the only copy: that absorb's record can reach the disk without its
 * msg/ link (a power failure between the two writes, on a filesystem
 * that orders neither). Before the entry may go, the link of its live
 * record is checked and made again from it when missing. */
static int leftover_check(struct mailbox *box, struct absorb_entry *e, const char **error_r)
{
	if (!box->view->full) {
		e->keep = true;
		return 0;
	}
	const struct mail_record *r = live_record(box->view, e->guid);
	if (r == NULL)
		return 0; /* expunged since: the entry is all that is left of it */
	char name[48];
	struct stat st;
	mailbox_msg_name(r->uid, name, sizeof(name));
	if (fstatat(box->msg_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
		return 0;
	uint64_t size;
	return link_entry(box, e->name, r->uid, &size, error_r);
}

/* Splits new/ into entries to absorb and leftovers of an earlier absorb. */
static int list_new(struct mailbox *box, struct absorb_list *fresh, struct absorb_list *left,
		    const char **error_r)
{
	DIR *d = open_new(box);
	if (d == NULL)
		return store_fail_errno(error_r, false, "open", "new/");
	struct dirent *de;
	int ret = 0;
	while (ret == 0 && (de = readdir(d)) != NULL) {
		struct absorb_entry e;
		const char *kw;
		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(e.name) ||
		    mailbox_new_parse(de->d_name, e.guid, &e.date, &e.flags, &kw) < 0)
			continue; /* not ours: store_fsck reports it */
		e.has_keywords = *kw != '\0';
		e.keywords = 0;
		e.keep = false;
		memcpy(e.name, de->d_name, strlen(de->d_name) + 1);
		bool done = index_absorb_contains(box->view, e.guid);
		if (done)
			ret = leftover_check(box, &e, error_r);
		list_add(done ? left : fresh, &e);
	}
	closedir(d);
	if (ret < 0)
		return ret;
	if (fresh->n > 0)
		qsort(fresh->e, fresh->n, sizeof(fresh->e[0]), entry_cmp);
	return 0;
}

/* Links new/<name> to msg/<b>/<uid>, replacing a stale file there. */
static int link_entry(struct mailbox *box, const char *name, uint32_t uid, uint64_t *size_r,
		      const char **error_r)
{
	struct stat st;
	if (fstatat(box->new_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return store_fail_errno(error_r, true, "stat", name);
	int bfd = mailbox_bucket_fd(box, uid, true, error_r);
	if (bfd < 0)
		return bfd;
	char uidname[16];
	snprintf(uidname, sizeof(uidname), "%u", uid);
	int r = linkat(box->new_fd, name, bfd, uidname, 0);
	if (r < 0 && errno == EEXIST) {
		/* uid >= UIDNEXT and we hold the lock: an orphan of a crash. */
		unlinkat(bfd, uidname, 0);
		r = linkat(box->new_fd, name, bfd, uidname, 0);
	}
	if (r < 0 && errno != EMLINK)
		return store_fail_errno(error_r, true, "link", name);
	/* The filesystem's limit of links per file: a copy then. */
	if (r < 0 && (r = mailbox_copy_file(box->new_fd, name, bfd, uidname, error_r)) < 0)
		return r;
	mailbox_bucket_touch(box);
	*size_r = (uint64_t)st.st_size;
	return 0;
}

/* The keyword masks of fresh[from, to), defining keywords as needed
 * (before the APPEND record is begun: definitions are records too). A
 * mailbox without room gets only the keywords it knows. */
static int absorb_keywords(struct mailbox *box, struct absorb_list *fresh, size_t from, size_t to,
			   const char **error_r)
{
	for (size_t i = from; i < to; i++) {
		struct absorb_entry *e = &fresh->e[i];
		if (!e->has_keywords)
			continue;
		const char *enc = strchr(e->name, '*');
		char buf[MAILBOX_NEW_NAME_MAX];
		const char *names[MAILBOX_KEYWORDS_MAX];
		int n = enc != NULL ? mailbox_new_keywords(enc, buf, names) : -1;
		if (n < 0)
			continue; /* parsed before: cannot happen */
		int ret = mailbox_keywords_mask(box, names, (size_t)n, true, &e->keywords, error_r);
		if (ret == STORE_E_LIMIT)
			ret = mailbox_keywords_mask(box, names, (size_t)n, false, &e->keywords, error_r);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* One APPEND record for fresh[from, to), carrying every GUID that may
 * still be in new/ once it is written. */
static int absorb_batch(struct mailbox *box, struct absorb_list *fresh, size_t from, size_t to,
			const struct absorb_list *left, const char **error_r)
{
	int kret = absorb_keywords(box, fresh, from, to, error_r);
	if (kret < 0)
		return kret;
	struct index_view *v = box->view;
	uint64_t modseq = v->state.highestmodseq + 1;
	textbuf_truncate(&box->buf, 0);
	size_t start = index_rec_begin(&box->buf);
	uint32_t count = 0;
	for (size_t i = from; i < to; i++) {
		struct mail_record m;
		memset(&m, 0, sizeof(m));
		m.uid = v->state.uidnext + count;
		int ret = link_entry(box, fresh->e[i].name, m.uid, &m.size, error_r);
		if (ret == STORE_E_NOTFOUND)
			continue;
		if (ret < 0)
			return ret;
		m.flags = fresh->e[i].flags;
		m.keywords = fresh->e[i].keywords;
		m.modseq = modseq;
		m.internal_date = fresh->e[i].date;
		memcpy(m.guid, fresh->e[i].guid, 16);
		index_put_msg(&box->buf, &m);
		count++;
	}
	index_put_u32(&box->buf, (uint32_t)(from + left->n));
	index_put_u32(&box->buf, 0);
	for (size_t i = 0; i < from; i++)
		textbuf_append(&box->buf, fresh->e[i].guid, 16);
	for (size_t i = 0; i < left->n; i++)
		textbuf_append(&box->buf, left->e[i].guid, 16);
	if (count == 0 && from + left->n == 0)
		return 0;
	return index_view_write(box->view, &box->buf, start, INDEX_REC_APPEND, INDEX_APPEND_ABSORBED,
				count, count > 0 ? modseq : 0, NULL, error_r);
}

int mailbox_absorb_restore(struct mailbox *box, const struct mail_record *r, bool repair,
			   const char **error_r)
{
	DIR *d = open_new(box);
	if (d == NULL)
		return errno == ENOENT ? 0 : store_fail_errno(error_r, false, "open", "new/");
	struct dirent *de;
	int ret = 0;
	while (ret == 0 && (de = readdir(d)) != NULL) {
		uint8_t guid[16];
		int64_t date;
		uint32_t flags;
		struct stat st;
		if (de->d_name[0] == '.' ||
		    mailbox_new_parse(de->d_name, guid, &date, &flags, NULL) < 0 ||
		    memcmp(guid, r->guid, 16) != 0 ||
		    fstatat(box->new_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    (uint64_t)st.st_size != r->size)
			continue;
		uint64_t size;
		ret = !repair ? 1 : link_entry(box, de->d_name, r->uid, &size, error_r) < 0 ? -1 : 1;
	}
	closedir(d);
	return ret;
}

int mailbox_absorb(struct mailbox *box, const char **error_r)
{
	if (!mailbox_new_pending(box))
		return 0;
	struct absorb_list fresh = { NULL, 0, 0 }, left = { NULL, 0, 0 };
	int ret = index_view_lock(box->view, error_r);
	if (ret < 0)
		return ret;
	ret = list_new(box, &fresh, &left, error_r);
	for (size_t from = 0; ret == 0 && from < fresh.n; from += MAILBOX_ABSORB_BATCH) {
		size_t to = fresh.n - from > MAILBOX_ABSORB_BATCH ? from + MAILBOX_ABSORB_BATCH : fresh.n;
		ret = absorb_batch(box, &fresh, from, to, &left, error_r);
	}
	index_view_unlock(box->view);
	size_t gone = fresh.n;
	for (size_t i = 0; i < left.n; i++)
		gone += !left.e[i].keep;
	if (ret == 0 && gone > 0)
		ret = mailbox_durable(box, error_r);
	if (ret == 0) {
		for (size_t i = 0; i < fresh.n; i++)
			unlinkat(box->new_fd, fresh.e[i].name, 0);
		for (size_t i = 0; i < left.n; i++)
			if (!left.e[i].keep)
				unlinkat(box->new_fd, left.e[i].name, 0);
	}
	free(fresh.e);
	free(left.e);
	return ret;
}
