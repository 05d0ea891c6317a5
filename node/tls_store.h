/*
 * Certificates on the shared store: the file layout under <store>/tls and
 * the assignment file that says which certificate serves what. Every node
 * reads the same files, so every node serves the same certificates.
 *
 *   <store>/tls/                     0750
 *   <store>/tls/certs/NAME.crt       0640  the certificate (PEM, one)
 *   <store>/tls/certs/NAME.chain     0640  intermediates, leaf's issuer first (optional)
 *   <store>/tls/certs/NAME.key       0600  the private key (PEM, unencrypted)
 *   <store>/tls/pending/NAME.key     0600  key made by `cert csr`, until import
 *   <store>/tls/pending/NAME.csr     0640  the request sent to the CA
 *   <store>/tls/assignments          0640  "default NAME", "domain DOMAIN NAME",
 *                                          "service SERVICE NAME", one per line
 *
 * Security stance: NAME is checked (tls_store_name_valid) before it ever
 * becomes part of a path, so a name cannot leave the directory. Files are
 * written to a temporary name with their final mode from the start, synced
 * and renamed, and the directory is synced: a crash leaves the old file or
 * the new one, never a half-written key, and a key is never readable by
 * anyone but the service user, not even for a moment. Nothing here parses
 * PEM or touches OpenSSL (node/tls_cert.c does); nothing here logs.
 *
 * Return values: 0 ok, 1 where stated ("found"/"removed"), -1 error with
 * *error_r pointing at a message valid until the next tls_store call on
 * the same thread.
 */
#ifndef CM_NODE_TLS_STORE_H
#define CM_NODE_TLS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/textbuf.h"

#define TLS_NAME_MAX 64
#define TLS_DOMAIN_MAX 253
#define TLS_FILE_MAX (1024 * 1024) /* larger certificate files are refused */

enum tls_store_kind {
	TLS_STORE_CERT,
	TLS_STORE_CHAIN,
	TLS_STORE_KEY,
	TLS_STORE_PENDING_KEY,
	TLS_STORE_PENDING_CSR,
};

/* [A-Za-z0-9][A-Za-z0-9._-]{0,63}: a file name that stays in its directory. */
bool tls_store_name_valid(const char *name);
/* The path of one file; 0, or -1 when it does not fit. */
int tls_store_path(const char *store_dir, enum tls_store_kind kind, const char *name, char *out,
		   size_t size);
/* <store>/tls/.lock: exclusive around putting every change of the
 * certificates or the assignments in place (mailctl on any node, offline
 * or through maild; the slow part runs before, see tls_store_stage),
 * shared around reading them for a reload, so that no change is lost to
 * another and no reader sees a new key beside an old certificate.
 * Returns the descriptor to pass to tls_store_unlock, or -1. */
int tls_store_lock(const char *store_dir, bool exclusive, const char **error_r);
void tls_store_unlock(int fd);
/* Reads one file into data (replacing its contents). 1 read, 0 absent, -1 error. */
int tls_store_read(const char *store_dir, enum tls_store_kind kind, const char *name,
		   struct textbuf *data, const char **error_r);
/* Atomically replaces one file (creating the directories), mode by kind. */
int tls_store_write(const char *store_dir, enum tls_store_kind kind, const char *name,
		    const void *data, size_t len, const char **error_r);
/* A change in two steps, so that the slow part runs without the lock:
 * tls_store_stage writes one file under a temporary name beside its final
 * one (mode by kind from the first byte, synced; invisible to readers,
 * which never open a temporary name), tls_store_install renames it into
 * place and syncs the directory (the step to take under the exclusive
 * lock), tls_store_discard removes one that is not to be installed. A
 * struct of zero bytes or one already installed or discarded holds
 * nothing: installing it is 0, discarding it does nothing. A failed
 * stage leaves nothing behind; a failed install discards. */
struct tls_store_staged {
	char path[1200]; /* "" when nothing is staged */
	char tmp[1300];
};
int tls_store_stage(const char *store_dir, enum tls_store_kind kind, const char *name,
		    const void *data, size_t len, struct tls_store_staged *st,
		    const char **error_r);
int tls_store_install(struct tls_store_staged *st, const char **error_r);
void tls_store_discard(struct tls_store_staged *st);
/* Moves a pending key into place as NAME.key (atomic rename on the store). */
int tls_store_adopt_pending_key(const char *store_dir, const char *name, const char **error_r);
/* 1 removed, 0 absent, -1 error. */
int tls_store_remove(const char *store_dir, enum tls_store_kind kind, const char *name,
		     const char **error_r);
typedef int tls_store_name_cb(const char *name, void *ctx);
/* Calls cb with every NAME that has a file of kind, in byte order; a
 * missing directory lists nothing. Stops at the first cb returning < 0
 * and returns that value; otherwise 0, or -1 on a read error. */
int tls_store_list(const char *store_dir, enum tls_store_kind kind, tls_store_name_cb *cb,
		   void *ctx, const char **error_r);

/* ---- the assignment file ---- */

enum tls_assign_kind {
	TLS_ASSIGN_DEFAULT,
	TLS_ASSIGN_DOMAIN,
	TLS_ASSIGN_SERVICE,
};

struct tls_assignment {
	enum tls_assign_kind kind;
	char target[TLS_DOMAIN_MAX + 1]; /* domain (lowercase) or service name; "" for default */
	char cert[TLS_NAME_MAX + 1];
};

struct tls_assignments {
	struct tls_assignment *items;
	size_t n, cap;
};

/* Parses the file's text into a (which must be empty or freed before).
 * 0, or -1 with one "line N: why" per problem appended to errors (a is
 * then freed). A domain target is validated and lowercased. */
int tls_assignments_parse(const char *text, size_t len, struct tls_assignments *a,
			  struct textbuf *errors);
/* The file's text, sorted: default, then services, then domains. */
void tls_assignments_format(const struct tls_assignments *a, struct textbuf *out);
/* Reads <store>/tls/assignments (absent: empty). 0 or -1 (errors). */
int tls_assignments_load(const char *store_dir, struct tls_assignments *a, struct textbuf *errors);
int tls_assignments_save(const char *store_dir, const struct tls_assignments *a,
			 const char **error_r);
/* Sets (cert != NULL) or removes (cert == NULL) the assignment of target.
 * Returns 1 when something changed, 0 when not (removing what is absent). */
int tls_assignments_set(struct tls_assignments *a, enum tls_assign_kind kind, const char *target,
			const char *cert);
/* The certificate assigned to target, or NULL. */
const char *tls_assignments_get(const struct tls_assignments *a, enum tls_assign_kind kind,
				const char *target);
/* How many assignments use cert. */
size_t tls_assignments_uses(const struct tls_assignments *a, const char *cert);
void tls_assignments_free(struct tls_assignments *a);

#endif
