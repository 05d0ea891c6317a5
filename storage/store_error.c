/*
 * store_error: error codes, their names, and the thread-local message
 * buffer every store function reports through (see storage/store.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "storage/store_internal.h"

static _Thread_local char store_errbuf[512];

const char *store_strerror(int err)
{
	switch (err) {
	case STORE_OK:
		return "ok";
	case STORE_E_TEMP:
		return "temporary failure";
	case STORE_E_NOTFOUND:
		return "not found";
	case STORE_E_EXISTS:
		return "already exists";
	case STORE_E_QUOTA:
		return "quota exceeded";
	case STORE_E_CORRUPT:
		return "corrupt";
	case STORE_E_INVALID:
		return "invalid";
	case STORE_E_LIMIT:
		return "limit exceeded";
	case STORE_E_EXPUNGED:
		return "expunged";
	default:
		return "unknown error";
	}
}

int store_fail(const char **error_r, int code, const char *fmt, ...)
{
	if (error_r != NULL) {
		/* Format into a scratch buffer first: an argument may be the
		 * previous message, which lives in store_errbuf. */
		char tmp[sizeof(store_errbuf)];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(tmp, sizeof(tmp), fmt, ap);
		va_end(ap);
		memcpy(store_errbuf, tmp, sizeof(tmp));
		*error_r = store_errbuf;
	}
	return code;
}

int store_fail_errno(const char **error_r, bool enoent_notfound, const char *what,
		     const char *name)
{
	int e = errno;
	int code = (enoent_notfound && e == ENOENT) ? STORE_E_NOTFOUND : STORE_E_TEMP;
	return store_fail(error_r, code, "%s %s: %s", what, name, strerror(e));
}
