/*
 * Certificate files and the assignment file on the shared store (see
 * tls_store.h for the layout and the security stance).
 *
 * Writes follow the store's crash rule: write a temporary file in the same
 * directory with the final mode, fsync it, rename it over the old one,
 * fsync the directory. On a cluster filesystem rename is atomic for every
 * node, so a node reloading at the wrong moment sees the old file or the
 * new one.
 */
#include "node/tls_store.h"

#include <ctype.h>
#include <stdarg.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/address.h"
#include "lib/strvec.h"

static _Thread_local char store_error[512];

__attribute__((format(printf, 2, 3))) static int store_fail(const char **error_r, const char *fmt,
							    ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(store_error, sizeof(store_error), fmt, ap);
	va_end(ap);
	*error_r = store_error;
	return -1;
}

bool tls_store_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > TLS_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-')
			return false;
	}
	return true;
}

static const char *kind_dir(enum tls_store_kind kind)
{
	return kind == TLS_STORE_PENDING_KEY || kind == TLS_STORE_PENDING_CSR ? "pending" : "certs";
}

static const char *kind_ext(enum tls_store_kind kind)
{
	switch (kind) {
	case TLS_STORE_CERT:
		return ".crt";
	case TLS_STORE_CHAIN:
		return ".chain";
	case TLS_STORE_KEY:
	case TLS_STORE_PENDING_KEY:
		return ".key";
	case TLS_STORE_PENDING_CSR:
		return ".csr";
	}
	return ".?";
}

static mode_t kind_mode(enum tls_store_kind kind)
{
	return kind == TLS_STORE_KEY || kind == TLS_STORE_PENDING_KEY ? 0600 : 0640;
}

int tls_store_path(const char *store_dir, enum tls_store_kind kind, const char *name, char *out,
		   size_t size)
{
	int n =
	    snprintf(out, size, "%s/tls/%s/%s%s", store_dir, kind_dir(kind), name, kind_ext(kind));
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int make_dir(const char *path, mode_t mode, const char **error_r)
{
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	return store_fail(error_r, "cannot create %s: %s", path, strerror(errno));
}

static int make_dirs(const char *store_dir, const char *sub, const char **error_r)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/tls", store_dir);
	if (make_dir(path, 0750, error_r) < 0)
		return -1;
	if (sub == NULL)
		return 0;
	snprintf(path, sizeof(path), "%s/tls/%s", store_dir, sub);
	return make_dir(path, 0750, error_r);
}

static int sync_dir(const char *dir, const char **error_r)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return store_fail(error_r, "cannot open %s: %s", dir, strerror(errno));
	int rc = fsync(fd);
	int err = errno;
	close(fd);
	if (rc < 0)
		return store_fail(error_r, "fsync %s: %s", dir, strerror(err));
	return 0;
}

/* Writes data to a new temporary name beside path, with mode from
 * creation on, and syncs it; st remembers both names. */
static int stage_file(const char *path, const void *data, size_t len, mode_t mode,
		      struct tls_store_staged *st, const char **error_r)
{
	/* Unique among every writer of the shared store (pids repeat across
	 * nodes and containers), and never opened twice. */
	unsigned char rnd[6];
	memset(st, 0, sizeof(*st));
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return store_fail(error_r, "no randomness for a temporary name");
	snprintf(st->tmp, sizeof(st->tmp), "%s.tmp.%ld.%02x%02x%02x%02x%02x%02x", path,
		 (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	int fd = open(st->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return store_fail(error_r, "cannot create %s: %s", st->tmp, strerror(errno));
	/* the umask may have taken bits away; never added any */
	if (fchmod(fd, mode) < 0)
		goto fail;
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		p += n;
		left -= (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	snprintf(st->path, sizeof(st->path), "%s", path);
	return 0;
fail:;
	int err = errno;
	if (fd >= 0)
		close(fd);
	unlink(st->tmp);
	st->tmp[0] = '\0';
	return store_fail(error_r, "cannot write %s: %s", path, strerror(err));
}

int tls_store_install(struct tls_store_staged *st, const char **error_r)
{
	if (st->path[0] == '\0')
		return 0;
	if (rename(st->tmp, st->path) < 0) {
		int err = errno;
		store_fail(error_r, "cannot write %s: %s", st->path, strerror(err));
		tls_store_discard(st);
		return -1;
	}
	char dir[sizeof(st->path)];
	snprintf(dir, sizeof(dir), "%s", st->path);
	memset(st, 0, sizeof(*st));
	char *slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	return sync_dir(dir, error_r);
}

void tls_store_discard(struct tls_store_staged *st)
{
	if (st->path[0] != '\0')
		unlink(st->tmp);
	memset(st, 0, sizeof(*st));
}

/* Replaces path with data atomically, with mode from creation on. */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			const char **error_r)
{
	struct tls_store_staged st;
	if (stage_file(path, data, len, mode, &st, error_r) < 0)
		return -1;
	return tls_store_install(&st, error_r);
}

/* Reads a whole regular file of at most TLS_FILE_MAX bytes. 1, 0 absent, -1. */
static int read_file(const char *path, struct textbuf *data, const char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return store_fail(error_r, "cannot open %s: %s", path, strerror(errno));
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TLS_FILE_MAX) {
		close(fd);
		return store_fail(error_r, "%s: not a regular file of at most %d bytes", path,
				  TLS_FILE_MAX);
	}
	textbuf_truncate(data, 0);
	char buf[8192];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(fd);
			return store_fail(error_r, "cannot read %s: %s", path, strerror(err));
		}
		if (n == 0)
			break;
		if (data->len + (size_t)n > TLS_FILE_MAX) {
			close(fd);
			return store_fail(error_r, "%s: larger than %d bytes", path, TLS_FILE_MAX);
		}
		textbuf_append(data, buf, (size_t)n);
	}
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return 1;
}

static int checked_path(const char *store_dir, enum tls_store_kind kind, const char *name,
			char *out, size_t size, const char **error_r)
{
	if (!tls_store_name_valid(name))
		return store_fail(error_r,
				  "'%s' is not a certificate name (letters, digits, '.', '_', '-'; "
				  "at most %d)",
				  name, TLS_NAME_MAX);
	if (tls_store_path(store_dir, kind, name, out, size) < 0)
		return store_fail(error_r, "store path too long");
	return 0;
}

int tls_store_lock(const char *store_dir, bool exclusive, const char **error_r)
{
	if (make_dirs(store_dir, NULL, error_r) < 0)
		return -1;
	char path[1200];
	snprintf(path, sizeof(path), "%s/tls/.lock", store_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return store_fail(error_r, "cannot open %s: %s", path, strerror(errno));
	/* An open file description's lock: threads of one process exclude
	 * each other too, and closing another descriptor never drops it. */
	struct flock fl = { .l_type = (short)(exclusive ? F_WRLCK : F_RDLCK), .l_whence = SEEK_SET };
	while (fcntl(fd, F_OFD_SETLKW, &fl) < 0) {
		if (errno == EINTR)
			continue;
		int err = errno;
		close(fd);
		return store_fail(error_r, "cannot lock %s: %s", path, strerror(err));
	}
	return fd;
}

void tls_store_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int tls_store_read(const char *store_dir, enum tls_store_kind kind, const char *name,
		   struct textbuf *data, const char **error_r)
{
	char path[1200];
	if (checked_path(store_dir, kind, name, path, sizeof(path), error_r) < 0)
		return -1;
	return read_file(path, data, error_r);
}

int tls_store_write(const char *store_dir, enum tls_store_kind kind, const char *name,
		    const void *data, size_t len, const char **error_r)
{
	char path[1200];
	if (checked_path(store_dir, kind, name, path, sizeof(path), error_r) < 0 ||
	    make_dirs(store_dir, kind_dir(kind), error_r) < 0)
		return -1;
	return write_atomic(path, data, len, kind_mode(kind), error_r);
}

int tls_store_stage(const char *store_dir, enum tls_store_kind kind, const char *name,
		    const void *data, size_t len, struct tls_store_staged *st, const char **error_r)
{
	char path[1200];
	memset(st, 0, sizeof(*st));
	if (checked_path(store_dir, kind, name, path, sizeof(path), error_r) < 0 ||
	    make_dirs(store_dir, kind_dir(kind), error_r) < 0)
		return -1;
	return stage_file(path, data, len, kind_mode(kind), st, error_r);
}

int tls_store_adopt_pending_key(const char *store_dir, const char *name, const char **error_r)
{
	char from[1200], to[1200];
	if (checked_path(store_dir, TLS_STORE_PENDING_KEY, name, from, sizeof(from), error_r) < 0 ||
	    checked_path(store_dir, TLS_STORE_KEY, name, to, sizeof(to), error_r) < 0 ||
	    make_dirs(store_dir, "certs", error_r) < 0)
		return -1;
	if (rename(from, to) < 0)
		return store_fail(error_r, "cannot move %s to %s: %s", from, to, strerror(errno));
	char dir[1200];
	snprintf(dir, sizeof(dir), "%s/tls/certs", store_dir);
	if (sync_dir(dir, error_r) < 0)
		return -1;
	snprintf(dir, sizeof(dir), "%s/tls/pending", store_dir);
	return sync_dir(dir, error_r);
}

int tls_store_remove(const char *store_dir, enum tls_store_kind kind, const char *name,
		     const char **error_r)
{
	char path[1200];
	if (checked_path(store_dir, kind, name, path, sizeof(path), error_r) < 0)
		return -1;
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return 0;
		return store_fail(error_r, "cannot remove %s: %s", path, strerror(errno));
	}
	return 1;
}

int tls_store_list(const char *store_dir, enum tls_store_kind kind, tls_store_name_cb *cb,
		   void *ctx, const char **error_r)
{
	char dir[1200];
	snprintf(dir, sizeof(dir), "%s/tls/%s", store_dir, kind_dir(kind));
	DIR *d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		return store_fail(error_r, "cannot list %s: %s", dir, strerror(errno));
	}
	const char *ext = kind_ext(kind);
	size_t ext_len = strlen(ext);
	struct strvec names = STRVEC_INIT;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len <= ext_len || strcmp(de->d_name + len - ext_len, ext) != 0)
			continue;
		char name[TLS_NAME_MAX + 1];
		if (len - ext_len > TLS_NAME_MAX)
			continue;
		memcpy(name, de->d_name, len - ext_len);
		name[len - ext_len] = '\0';
		if (!tls_store_name_valid(name))
			continue; /* temporary files and strangers */
		strvec_push(&names, name);
	}
	closedir(d);
	strvec_sort(&names, NULL);
	int rc = 0;
	for (size_t i = 0; i < names.n && rc >= 0; i++)
		rc = cb(names.v[i], ctx);
	strvec_free(&names);
	return rc < 0 ? rc : 0;
}

/* ---- assignments ---- */

static const char *const assign_words[] = {
	[TLS_ASSIGN_DEFAULT] = "default",
	[TLS_ASSIGN_DOMAIN] = "domain",
	[TLS_ASSIGN_SERVICE] = "service",
};

static bool service_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 31)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
			return false;
	return true;
}

int tls_assignments_set(struct tls_assignments *a, enum tls_assign_kind kind, const char *target,
			const char *cert)
{
	if (kind == TLS_ASSIGN_DEFAULT)
		target = "";
	for (size_t i = 0; i < a->n; i++) {
		struct tls_assignment *it = &a->items[i];
		if (it->kind != kind || strcmp(it->target, target) != 0)
			continue;
		if (cert == NULL) {
			a->items[i] = a->items[--a->n];
			return 1;
		}
		if (strcmp(it->cert, cert) == 0)
			return 0;
		snprintf(it->cert, sizeof(it->cert), "%s", cert);
		return 1;
	}
	if (cert == NULL)
		return 0;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 8;
		struct tls_assignment *grown = realloc(a->items, a->cap * sizeof(*grown));
		if (grown == NULL)
			abort();
		a->items = grown;
	}
	struct tls_assignment *it = &a->items[a->n++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	snprintf(it->target, sizeof(it->target), "%s", target);
	snprintf(it->cert, sizeof(it->cert), "%s", cert);
	return 1;
}

const char *tls_assignments_get(const struct tls_assignments *a, enum tls_assign_kind kind,
				const char *target)
{
	if (kind == TLS_ASSIGN_DEFAULT)
		target = "";
	for (size_t i = 0; i < a->n; i++)
		if (a->items[i].kind == kind && strcmp(a->items[i].target, target) == 0)
			return a->items[i].cert;
	return NULL;
}

size_t tls_assignments_uses(const struct tls_assignments *a, const char *cert)
{
	size_t n = 0;
	for (size_t i = 0; i < a->n; i++)
		n += strcmp(a->items[i].cert, cert) == 0;
	return n;
}

void tls_assignments_free(struct tls_assignments *a)
{
	free(a->items);
	memset(a, 0, sizeof(*a));
}

/* Splits line into at most 4 whitespace-separated words (NUL-terminating
 * them in place); returns the count, 4 meaning "too many". */
static int split_words(char *line, char **words)
{
	int n = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return n;
		if (n == 4)
			return 4;
		words[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
}

static int parse_line(char *line, struct tls_assignments *a, const char **why_r)
{
	char *w[4];
	int n = split_words(line, w);
	if (n == 0 || w[0][0] == '#')
		return 0;
	enum tls_assign_kind kind;
	const char *target = "", *cert;
	char domain[TLS_DOMAIN_MAX + 1];
	if (strcmp(w[0], "default") == 0 && n == 2) {
		kind = TLS_ASSIGN_DEFAULT;
		cert = w[1];
	} else if (strcmp(w[0], "domain") == 0 && n == 3) {
		kind = TLS_ASSIGN_DOMAIN;
		if (domain_normalize(w[1], domain, sizeof(domain), why_r) < 0)
			return -1;
		target = domain;
		cert = w[2];
	} else if (strcmp(w[0], "service") == 0 && n == 3) {
		kind = TLS_ASSIGN_SERVICE;
		if (!service_name_valid(w[1])) {
			*why_r = "not a service name";
			return -1;
		}
		target = w[1];
		cert = w[2];
	} else {
		*why_r =
		    "expected \"default CERT\", \"domain DOMAIN CERT\" or \"service SERVICE CERT\"";
		return -1;
	}
	if (!tls_store_name_valid(cert)) {
		*why_r = "not a certificate name";
		return -1;
	}
	if (tls_assignments_get(a, kind, target) != NULL) {
		*why_r = "assigned twice";
		return -1;
	}
	tls_assignments_set(a, kind, target, cert);
	return 0;
}

int tls_assignments_parse(const char *text, size_t len, struct tls_assignments *a,
			  struct textbuf *errors)
{
	size_t start = 0;
	unsigned line_no = 0;
	int bad = 0;
	while (start < len) {
		size_t end = start;
		while (end < len && text[end] != '\n')
			end++;
		line_no++;
		char line[600];
		size_t n = end - start;
		if (n > 0 && text[end - 1] == '\r')
			n--;
		const char *why = NULL;
		if (n >= sizeof(line)) {
			why = "line too long";
		} else if (memchr(text + start, '\0', n) != NULL) {
			why = "NUL byte";
		} else {
			memcpy(line, text + start, n);
			line[n] = '\0';
			if (parse_line(line, a, &why) < 0 && why == NULL)
				why = "invalid";
		}
		if (why != NULL) {
			textbuf_printf(errors, "line %u: %s\n", line_no, why);
			bad++;
		}
		start = end + 1;
	}
	if (bad > 0) {
		tls_assignments_free(a);
		return -1;
	}
	return 0;
}

static int compare_assignments(const void *pa, const void *pb)
{
	const struct tls_assignment *a = pa, *b = pb;
	static const int order[] = { [TLS_ASSIGN_DEFAULT] = 0, [TLS_ASSIGN_SERVICE] = 1,
				     [TLS_ASSIGN_DOMAIN] = 2 };
	if (order[a->kind] != order[b->kind])
		return order[a->kind] - order[b->kind];
	return strcmp(a->target, b->target);
}

void tls_assignments_format(const struct tls_assignments *a, struct textbuf *out)
{
	struct tls_assignment *sorted = NULL;
	if (a->n > 0) {
		sorted = malloc(a->n * sizeof(*sorted));
		if (sorted == NULL)
			abort();
		memcpy(sorted, a->items, a->n * sizeof(*sorted));
		qsort(sorted, a->n, sizeof(*sorted), compare_assignments);
	}
	textbuf_puts(out, "# Which certificate serves what; written by `mailctl cert assign`.\n");
	for (size_t i = 0; i < a->n; i++) {
		const struct tls_assignment *it = &sorted[i];
		if (it->kind == TLS_ASSIGN_DEFAULT)
			textbuf_printf(out, "default %s\n", it->cert);
		else
			textbuf_printf(out, "%s %s %s\n", assign_words[it->kind], it->target,
				       it->cert);
	}
	free(sorted);
}

int tls_assignments_load(const char *store_dir, struct tls_assignments *a, struct textbuf *errors)
{
	char path[1200];
	struct textbuf data = TEXTBUF_INIT;
	const char *error = NULL;
	snprintf(path, sizeof(path), "%s/tls/assignments", store_dir);
	memset(a, 0, sizeof(*a));
	int rc = read_file(path, &data, &error);
	if (rc < 0) {
		textbuf_printf(errors, "%s\n", error);
		textbuf_free(&data);
		return -1;
	}
	struct textbuf why = TEXTBUF_INIT;
	if (rc == 1 && tls_assignments_parse(data.data, data.len, a, &why) < 0) {
		/* every line of why names its line in path */
		const char *p = textbuf_str(&why);
		while (*p != '\0') {
			const char *nl = strchr(p, '\n');
			size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
			textbuf_printf(errors, "%s: %.*s\n", path, (int)n, p);
			p += n + (nl != NULL);
		}
		rc = -1;
	}
	textbuf_free(&why);
	textbuf_free(&data);
	return rc < 0 ? -1 : 0;
}

int tls_assignments_save(const char *store_dir, const struct tls_assignments *a,
			 const char **error_r)
{
	char path[1200];
	struct textbuf text = TEXTBUF_INIT;
	if (make_dirs(store_dir, NULL, error_r) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/tls/assignments", store_dir);
	tls_assignments_format(a, &text);
	int rc = write_atomic(path, text.data, text.len, 0640, error_r);
	textbuf_free(&text);
	return rc;
}
