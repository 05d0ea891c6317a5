/*
 * `mailctl user import FILE`: reads CSV records "address,password[,quota]"
 * (blank lines, '#' comments and an "address,..." header are skipped),
 * hashes plaintext passwords in parallel on all cores (crypt(3) hashes
 * are kept as they are, so accounts migrate without their plaintext), and
 * submits the users in batches of IMPORT_BATCH as "user import-records"
 * commands, each one durable commit. Shows a progress bar on a terminal,
 * a summary line otherwise.
 */
#ifndef CM_NODE_USER_IMPORT_H
#define CM_NODE_USER_IMPORT_H

#include "lib/password.h"
#include "lib/textbuf.h"

#define IMPORT_BATCH 1000

typedef int import_submit_fn(int argc, char **argv, struct textbuf *out, struct textbuf *err,
			     void *ctx);

/* Returns the exit code: 0 when every record was imported, 1 when some
 * were skipped or failed (each reported on stderr with its line). */
int user_import_run(const char *path, enum password_scheme scheme, unsigned long cost,
		    unsigned threads, import_submit_fn *submit, void *ctx);

#endif
