/*
 * The workload and the checker shared by test_store_concurrency.c (many
 * processes and threads at once) and test_store_crash.c (writers killed
 * with SIGKILL at random points).
 *
 * Workers append, deliver, flag, expunge, copy and move in the shared
 * mailboxes INBOX, A and B of stress@example.com (deliveries go to
 * dlv@example.com). Every message carries a unique tag in its Subject.
 * Each worker keeps a journal, one line per event, written with one
 * write(2) so that it survives the writer being killed: a lowercase line
 * before an operation (intent), an uppercase one after it succeeded
 * (acknowledged). The checker replays all journals and compares them with
 * the store: every acknowledged message is present exactly once with its
 * tag, flags equal the last acknowledged change, expunged or moved
 * messages are gone, no (mailbox, UID) ever names two messages, UIDs are
 * increasing and MODSEQs within HIGHESTMODSEQ. An operation that was in
 * flight when its writer died may or may not have happened; the checker
 * allows exactly that much.
 */
#ifndef CM_TEST_STORE_WORKLOAD_H
#define CM_TEST_STORE_WORKLOAD_H

#include <time.h>

#include "tests/unit/test_store_helpers.h"

#define WL_USER "stress@example.com"
#define WL_DLV "dlv@example.com"
#define WL_BOXES 3
#define WL_FLAGS (MAIL_SEEN | MAIL_ANSWERED | MAIL_FLAGGED | MAIL_DRAFT)

static const char *const wl_box_names[WL_BOXES] = { "INBOX", "A", "B" };

static inline double wl_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline void wl_log(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void wl_log(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(fd, line, (size_t)n) != n)
		abort();
}

static inline void wl_die(const char *what, int ret, const char *err)
{
	fprintf(stderr, "workload: %s: %d %s\n", what, ret, err != NULL ? err : "");
	_exit(3);
}

struct wl_own {
	int box;
	uint32_t uid;
	char tag[32];
};

/* Creates the users and mailboxes (before any worker starts). */
static inline void wl_prepare(struct store *s)
{
	const char *err;
	struct store_user *u = tstore_user(s, WL_USER);
	for (int i = 1; i < WL_BOXES; i++)
		assert_int_equal(mailbox_create(u, wl_box_names[i], 0, &err), 0);
	store_user_close(&u);
	u = tstore_user(s, WL_DLV);
	store_user_close(&u);
}

static inline void wl_tag_of(struct mailbox *b, uint32_t uid, char *tag, size_t size)
{
	char buf[64];
	size_t n = 0;
	const char *err;
	tag[0] = '\0';
	if (mailbox_msg_read(b, uid, 0, buf, sizeof(buf) - 1, &n, &err) != 0)
		return;
	buf[n] = '\0';
	if (strncmp(buf, "Subject: ", 9) == 0)
		snprintf(tag, size, "%.*s", (int)strcspn(buf + 9, "\r"), buf + 9);
}

/* Runs one worker for seconds (or until killed). */
static inline void wl_run(struct store *s, int worker, int jfd, double seconds, unsigned seed)
{
	const char *err = NULL;
	struct store_user *u = NULL;
	struct mailbox *box[WL_BOXES];
	int ret = store_user_open(s, WL_USER, &u, &err);
	if (ret != 0)
		wl_die("user", ret, err);
	for (int i = 0; i < WL_BOXES; i++)
		if ((ret = mailbox_open(u, wl_box_names[i], 0, &box[i], &err)) != 0)
			wl_die("open", ret, err);
	struct wl_own own[512];
	size_t n_own = 0;
	double end = wl_now() + seconds;
	for (unsigned n = 0; wl_now() < end; n++) {
		int op = (int)(rand_r(&seed) % 100), b = (int)(rand_r(&seed) % WL_BOXES);
		char tag[32], body[96];
		snprintf(tag, sizeof(tag), "w%d-%u", worker, n);
		snprintf(body, sizeof(body), "Subject: %s\r\n\r\nbody of %s\r\n", tag, tag);
		if (op < 35 && n_own < 512) {
			uint32_t flags = rand_r(&seed) & WL_FLAGS, uid;
			struct mail_append a = { .writer = tstore_writer(s, body), .flags = flags };
			wl_log(jfd, "a %s %d\n", tag, b);
			if ((ret = mailbox_append(box[b], &a, 1, NULL, &uid, NULL, &err)) != 0)
				wl_die("append", ret, err);
			wl_log(jfd, "A %s %d %u %u\n", tag, b, uid, flags);
			own[n_own].box = b;
			own[n_own].uid = uid;
			snprintf(own[n_own++].tag, sizeof(own[0].tag), "%s", tag);
		} else if (op < 45) {
			struct store_rcpt r;
			memset(&r, 0, sizeof(r));
			r.address = WL_DLV;
			struct mail_writer *w = tstore_writer(s, body);
			wl_log(jfd, "d %s\n", tag);
			if ((ret = store_deliver(s, &w, NULL, &r, 1, &err)) != 0 || r.result != 0)
				wl_die("deliver", ret ? ret : r.result, ret ? err : r.error);
			wl_log(jfd, "D %s\n", tag);
		} else if (op < 65 && n_own > 0) {
			struct wl_own *o = &own[rand_r(&seed) % n_own];
			uint32_t flags = rand_r(&seed) & WL_FLAGS;
			struct uidset set = UIDSET_INIT;
			uidset_add(&set, o->uid);
			struct mail_flags_update upd = { .op = MAIL_FLAGS_REPLACE, .flags = flags };
			uint64_t modseq = 0;
			wl_log(jfd, "f %d %u %u\n", o->box, o->uid, flags);
			if ((ret = mailbox_store(box[o->box], &set, &upd, NULL, &modseq, &err)) != 0)
				wl_die("store", ret, err);
			wl_log(jfd, "F %d %u %u %llu\n", o->box, o->uid, flags, (unsigned long long)modseq);
			uidset_free(&set);
		} else if (op < 75 && n_own > 0) {
			size_t k = rand_r(&seed) % n_own;
			struct uidset set = UIDSET_INIT;
			uidset_add(&set, own[k].uid);
			wl_log(jfd, "x %d %u\n", own[k].box, own[k].uid);
			if ((ret = mailbox_expunge(box[own[k].box], &set, true, NULL, &err)) != 0)
				wl_die("expunge", ret, err);
			wl_log(jfd, "X %d %u\n", own[k].box, own[k].uid);
			own[k] = own[--n_own];
			uidset_free(&set);
		} else if (op < 85) {
			/* Copy anyone's message (as this session sees it). */
			size_t count;
			const struct mail_record *recs = mailbox_records(box[b], &count);
			int dst = (b + 1 + (int)(rand_r(&seed) % (WL_BOXES - 1))) % WL_BOXES;
			if (count == 0)
				continue;
			uint32_t src_uid = recs[rand_r(&seed) % count].uid;
			struct uidset set = UIDSET_INIT, su = UIDSET_INIT, du = UIDSET_INIT;
			char src_tag[32];
			wl_tag_of(box[b], src_uid, src_tag, sizeof(src_tag));
			uidset_add(&set, src_uid);
			wl_log(jfd, "c %d %u %d\n", b, src_uid, dst);
			if ((ret = mailbox_copy(box[b], &set, box[dst], false, NULL, &su, &du, &err)) != 0)
				wl_die("copy", ret, err);
			if (!uidset_empty(&du))
				wl_log(jfd, "C %d %u %d %u %s\n", b, src_uid, dst, du.r[0].first,
				       src_tag[0] ? src_tag : "?");
			uidset_free(&set);
			uidset_free(&su);
			uidset_free(&du);
		} else if (op < 92 && n_own > 0) {
			size_t k = rand_r(&seed) % n_own;
			int dst = (own[k].box + 1) % WL_BOXES;
			struct uidset set = UIDSET_INIT, du = UIDSET_INIT;
			uidset_add(&set, own[k].uid);
			wl_log(jfd, "m %d %u %d\n", own[k].box, own[k].uid, dst);
			if ((ret = mailbox_copy(box[own[k].box], &set, box[dst], true, NULL, NULL, &du, &err)) != 0)
				wl_die("move", ret, err);
			if (uidset_empty(&du))
				wl_die("move found nothing", 0, own[k].tag);
			wl_log(jfd, "M %d %u %d %u\n", own[k].box, own[k].uid, dst, du.r[0].first);
			own[k].box = dst;
			own[k].uid = du.r[0].first;
			uidset_free(&set);
			uidset_free(&du);
		} else {
			for (int i = 0; i < WL_BOXES; i++)
				if ((ret = mailbox_sync(box[i], NULL, NULL, &err)) != 0)
					wl_die("sync", ret, err);
		}
	}
	for (int i = 0; i < WL_BOXES; i++)
		mailbox_close(&box[i]);
	store_user_close(&u);
}

/* ---- the checker ---- */

struct wl_msg {
	int box;
	uint32_t uid;
	char tag[32];
	uint32_t flags_ok;   /* bit v set: flags value v is acceptable */
	int present;         /* 1 yes, 0 gone, -1 maybe (in flight when killed) */
	uint64_t last_modseq;
};

struct wl_state {
	struct wl_msg *m;
	size_t n, cap;
	char (*dlv)[32];     /* acknowledged deliveries */
	size_t n_dlv, cap_dlv;
	unsigned inflight_new;  /* messages an interrupted op may have added */
	unsigned inflight_dlv;
};

static inline struct wl_msg *wl_find(struct wl_state *st, int box, uint32_t uid)
{
	for (size_t i = st->n; i-- > 0;)
		if (st->m[i].box == box && st->m[i].uid == uid)
			return &st->m[i];
	return NULL;
}

static inline struct wl_msg *wl_add(struct wl_state *st, int box, uint32_t uid, const char *tag)
{
	struct wl_msg *old = wl_find(st, box, uid);
	if (old != NULL)
		fail_msg("UID %u of mailbox %s names both %s and %s", uid, wl_box_names[box], old->tag, tag);
	if (st->n == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 256;
		st->m = realloc(st->m, st->cap * sizeof(*st->m));
	}
	struct wl_msg *m = &st->m[st->n++];
	memset(m, 0, sizeof(*m));
	m->box = box;
	m->uid = uid;
	snprintf(m->tag, sizeof(m->tag), "%s", tag);
	m->present = 1;
	m->flags_ok = UINT32_MAX;
	return m;
}

/* Replays one journal; complete lines only (a killed writer may have cut
 * its last one). */
static inline void wl_replay(struct wl_state *st, const char *path)
{
	char *data;
	size_t len = tstore_read_file(path, &data);
	char pending[128] = "";
	size_t off = 0;
	while (off < len) {
		char *nl = memchr(data + off, '\n', len - off);
		if (nl == NULL)
			break;
		*nl = '\0';
		char *line = data + off;
		off = (size_t)(nl - data) + 1;
		char tag[32];
		int b, d;
		unsigned u, u2, fl;
		unsigned long long ms;
		if (line[0] >= 'a' && line[0] <= 'z') {
			snprintf(pending, sizeof(pending), "%s", line);
			continue;
		}
		pending[0] = '\0';
		struct wl_msg *m;
		if (sscanf(line, "A %31s %d %u %u", tag, &b, &u, &fl) == 4) {
			m = wl_add(st, b, u, tag);
			m->flags_ok = 1u << fl;
		} else if (sscanf(line, "D %31s", tag) == 1) {
			if (st->n_dlv == st->cap_dlv) {
				st->cap_dlv = st->cap_dlv ? st->cap_dlv * 2 : 64;
				st->dlv = realloc(st->dlv, st->cap_dlv * sizeof(*st->dlv));
			}
			snprintf(st->dlv[st->n_dlv++], 32, "%s", tag);
		} else if (sscanf(line, "F %d %u %u %llu", &b, &u, &fl, &ms) == 4) {
			if ((m = wl_find(st, b, u)) == NULL)
				fail_msg("%s: flags for an unknown message: %s", path, line);
			if (ms != 0 && ms <= m->last_modseq)
				fail_msg("%s: MODSEQ went back: %s", path, line);
			if (ms != 0)
				m->last_modseq = ms;
			m->flags_ok = 1u << fl;
		} else if (sscanf(line, "X %d %u", &b, &u) == 2) {
			if ((m = wl_find(st, b, u)) == NULL)
				fail_msg("%s: expunge of an unknown message: %s", path, line);
			m->present = 0;
		} else if (sscanf(line, "C %d %u %d %u %31s", &b, &u, &d, &u2, tag) == 5) {
			m = wl_add(st, d, u2, tag);
		} else if (sscanf(line, "M %d %u %d %u", &b, &u, &d, &u2) == 4) {
			struct wl_msg *src = wl_find(st, b, u);
			if (src == NULL)
				fail_msg("%s: move of an unknown message: %s", path, line);
			src->present = 0;
			uint32_t fok = src->flags_ok;
			snprintf(tag, sizeof(tag), "%s", src->tag);
			m = wl_add(st, d, u2, tag);
			m->flags_ok = fok;
		}
	}
	/* What was in flight when the writer died. */
	int b;
	unsigned u, fl;
	struct wl_msg *m;
	if (pending[0] == 'a' || pending[0] == 'c' || pending[0] == 'm')
		st->inflight_new++;
	if (pending[0] == 'd')
		st->inflight_dlv++;
	if (sscanf(pending, "f %d %u %u", &b, &u, &fl) == 3 && (m = wl_find(st, b, u)) != NULL)
		m->flags_ok |= 1u << fl;
	if ((sscanf(pending, "x %d %u", &b, &u) == 2 || sscanf(pending, "m %d %u", &b, &u) == 2) &&
	    (m = wl_find(st, b, u)) != NULL && m->present == 1)
		m->present = -1;
	free(data);
}

/* Compares the store with the journals. highest[] carries each mailbox's
 * HIGHESTMODSEQ from one check to the next (must never go down). */
static inline void wl_check(struct store *s, struct wl_state *st, uint64_t highest[WL_BOXES],
			    uint32_t uidvalidity[WL_BOXES])
{
	struct store_user *u = tstore_user(s, WL_USER);
	unsigned extra_total = 0;
	for (int bx = 0; bx < WL_BOXES; bx++) {
		struct mailbox *b = tstore_mailbox(u, wl_box_names[bx], MAILBOX_OPEN_READONLY);
		struct mailbox_status ms;
		mailbox_get_status(b, &ms);
		if (uidvalidity[bx] != 0 && ms.uidvalidity != uidvalidity[bx])
			fail_msg("%s: UIDVALIDITY changed", wl_box_names[bx]);
		uidvalidity[bx] = ms.uidvalidity;
		if (ms.highestmodseq < highest[bx])
			fail_msg("%s: HIGHESTMODSEQ went back", wl_box_names[bx]);
		highest[bx] = ms.highestmodseq;
		size_t count;
		const struct mail_record *recs = mailbox_records(b, &count);
		for (size_t i = 0; i < count; i++) {
			if (i > 0 && recs[i].uid <= recs[i - 1].uid)
				fail_msg("%s: UIDs not increasing", wl_box_names[bx]);
			if (recs[i].modseq > ms.highestmodseq || recs[i].uid >= ms.uidnext)
				fail_msg("%s: record %u beyond the header", wl_box_names[bx], recs[i].uid);
			struct wl_msg *m = wl_find(st, bx, recs[i].uid);
			if (m == NULL || m->present == 0) {
				if (m != NULL)
					fail_msg("%s: %u (%s) should be gone", wl_box_names[bx], m->uid, m->tag);
				extra_total++;
				continue;
			}
			char tag[32];
			wl_tag_of(b, recs[i].uid, tag, sizeof(tag));
			if (strcmp(m->tag, "?") != 0 && strcmp(tag, m->tag) != 0)
				fail_msg("%s: UID %u holds \"%s\", want \"%s\"", wl_box_names[bx], recs[i].uid, tag,
					 m->tag);
			uint32_t fl = recs[i].flags & MAIL_FLAGS_MASK;
			if (!(m->flags_ok & (1u << fl)))
				fail_msg("%s: UID %u (%s) has flags %x, not the last acknowledged",
					 wl_box_names[bx], recs[i].uid, m->tag, fl);
			m->present = m->present == -1 ? 2 : m->present; /* seen */
		}
		for (size_t i = 0; i < st->n; i++)
			if (st->m[i].box == bx && st->m[i].present == 1 &&
			    mailbox_lookup(b, st->m[i].uid) == NULL)
				fail_msg("%s: acknowledged %s (UID %u) is missing", wl_box_names[bx], st->m[i].tag,
					 st->m[i].uid);
		for (size_t i = 0; i < st->n; i++)
			if (st->m[i].present == 2)
				st->m[i].present = 1;
		mailbox_close(&b);
	}
	if (extra_total > st->inflight_new)
		fail_msg("%u messages nobody acknowledged (at most %u were in flight)", extra_total,
			 st->inflight_new);
	store_user_close(&u);
	/* Deliveries: each acknowledged tag exactly once. */
	u = tstore_user(s, WL_DLV);
	struct mailbox *b = tstore_mailbox(u, "INBOX", MAILBOX_OPEN_READONLY);
	size_t count;
	const struct mail_record *recs = mailbox_records(b, &count);
	char(*seen)[32] = calloc(count + 1, 32);
	for (size_t i = 0; i < count; i++)
		wl_tag_of(b, recs[i].uid, seen[i], 32);
	for (size_t k = 0; k < st->n_dlv; k++) {
		int times = 0;
		for (size_t i = 0; i < count; i++)
			times += strcmp(seen[i], st->dlv[k]) == 0;
		if (times != 1)
			fail_msg("delivery %s found %d times", st->dlv[k], times);
	}
	if (count > st->n_dlv + st->inflight_dlv)
		fail_msg("%zu deliveries, %zu acknowledged", count, st->n_dlv);
	free(seen);
	mailbox_close(&b);
	store_user_close(&u);
}

static inline void wl_state_free(struct wl_state *st)
{
	free(st->m);
	free(st->dlv);
	memset(st, 0, sizeof(*st));
}

#endif
