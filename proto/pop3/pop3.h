/*
 * The POP3 protocol engine (RFC 1939, RFC 2449 CAPA and response codes,
 * RFC 2595 STLS, RFC 5034 SASL). Pure: bytes in through
 * pop3_session_input(), bytes out through backend->write(); every
 * side effect (credentials, the maildrop, TLS, closing) is a backend call
 * that node/ implements. No I/O here, no storage format, no threads.
 *
 * Flow control: each entry point returns what the session waits for next.
 *  POP3_WANT_INPUT   feed more client bytes when they arrive
 *  POP3_WANT_OUTPUT  a RETR/TOP is streaming: call pop3_session_resume()
 *                    once the client has drained what was written
 *  POP3_WANT_AUTH    credentials are being checked (backend->auth_begin);
 *                    call pop3_session_auth_result() with the answer, which
 *                    may come later from another thread's work (never block
 *                    an event loop on a password hash or a failure delay)
 *  POP3_WANT_STORE   the maildrop is being opened (backend->maildrop_open)
 *                    or the QUIT deletions committed (backend->maildrop_commit):
 *                    both touch the disk and may fsync, so they run off the
 *                    event loop; answer with pop3_session_maildrop_opened()
 *                    or pop3_session_commit_done()
 *  POP3_WANT_TLS     STLS was accepted: flush the "+OK", start TLS, then
 *                    call pop3_session_tls_started()
 *  POP3_WANT_CLOSE   flush and close the connection
 * While not WANT_INPUT, further input is buffered (pipelining, RFC 2449)
 * and processed afterwards — except around STLS, where anything buffered
 * after the command is discarded (CVE-2011-0411 class).
 *
 * Security stance: command lines are bounded (POP3_LINE_MAX), arguments
 * checked, NUL bytes refused, too many bad commands close the session,
 * USER/PASS and PLAIN-style SASL are refused before TLS unless the backend
 * allows plaintext, and nothing is deleted unless QUIT commits it.
 */
#ifndef CM_PROTO_POP3_H
#define CM_PROTO_POP3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Limits (docs/limits.md). RFC 2449 §4: command lines up to 255 octets. */
#define POP3_LINE_MAX 255
/* SASL responses are longer than commands (GSSAPI tokens). */
#define POP3_SASL_LINE_MAX 16384
#define POP3_USER_MAX 320
#define POP3_MAX_BAD_COMMANDS 10
/* Bytes of message streamed per resume: keeps one session from hogging
 * its event loop and bounds what is queued to a slow client. */
#define POP3_STREAM_CHUNK (64 * 1024)

enum pop3_want {
	POP3_WANT_INPUT,
	POP3_WANT_OUTPUT,
	POP3_WANT_AUTH,
	POP3_WANT_STORE,
	POP3_WANT_TLS,
	POP3_WANT_CLOSE,
};

enum pop3_auth_kind {
	POP3_AUTH_PASS,       /* USER + PASS */
	POP3_AUTH_APOP,       /* APOP user digest */
	POP3_AUTH_SASL_START, /* AUTH mech [initial-response] */
	POP3_AUTH_SASL_STEP,  /* a client response to a challenge */
	POP3_AUTH_SASL_ABORT, /* the client sent "*" */
};

struct pop3_auth_request {
	enum pop3_auth_kind kind;
	const char *user;       /* PASS, APOP */
	const char *secret;     /* PASS: password; APOP: hex digest */
	const char *timestamp;  /* APOP: the banner's timestamp */
	const char *mechanism;  /* SASL_START, uppercased */
	const char *response;   /* SASL_START (NULL = none, "" = empty "="), SASL_STEP: base64 text */
};

enum pop3_auth_status {
	POP3_AUTH_OK,          /* user is authenticated */
	POP3_AUTH_CONTINUE,    /* SASL: send challenge (base64 text) */
	POP3_AUTH_FAILED,      /* bad credentials: -ERR [AUTH] */
	POP3_AUTH_TEMPFAIL,    /* -ERR [SYS/TEMP] */
	POP3_AUTH_UNSUPPORTED, /* unknown or not allowed mechanism */
};

struct pop3_message {
	uint64_t size;  /* octets as sent (CRLF line ends, before dot-stuffing) */
	char uid[72];   /* UIDL: stable across sessions and nodes */
};

enum pop3_read_status {
	POP3_READ_GONE = -1, /* expunged by another session since the snapshot */
	POP3_READ_TEMP = -2, /* I/O error */
};

enum pop3_maildrop_status {
	POP3_MAILDROP_OK = 0,
	POP3_MAILDROP_IN_USE = -1, /* [IN-USE] */
	POP3_MAILDROP_TEMP = -2,   /* [SYS/TEMP] */
	POP3_MAILDROP_PERM = -3,   /* [SYS/PERM] */
};

struct pop3_backend {
	void (*write)(void *ctx, const void *data, size_t len);
	void (*auth_begin)(void *ctx, const struct pop3_auth_request *req);
	/* Open the maildrop of the authenticated user; answer with
	 * pop3_session_maildrop_opened(). */
	void (*maildrop_open)(void *ctx, const char *user);
	/* Bytes of message index (0-based) from offset: count read (0 = end) or POP3_READ_*. */
	ssize_t (*message_read)(void *ctx, size_t index, uint64_t offset, void *buf, size_t len);
	/* QUIT in TRANSACTION: remove these messages (0-based indexes; the
	 * array is valid until the answer); answer with pop3_session_commit_done(). */
	void (*maildrop_commit)(void *ctx, const size_t *indexes, size_t count);
	void (*maildrop_close)(void *ctx);
};

struct pop3_settings {
	const char *hostname;          /* for the greeting */
	const char *implementation;    /* CAPA IMPLEMENTATION, or NULL */
	const char *apop_timestamp;    /* "<...>" when APOP is offered, else NULL */
	const char *sasl_mechanisms;   /* space-separated, already filtered for this connection's TLS state */
	bool tls_active;
	bool stls_available;           /* a certificate exists and TLS is not active yet */
	bool plaintext_auth_allowed;   /* USER/PASS and plaintext SASL without TLS */
	unsigned login_delay;          /* CAPA LOGIN-DELAY seconds, 0 = not advertised */
};

struct pop3_session;

/* Writes the greeting. settings strings are copied. NULL on out of memory. */
struct pop3_session *pop3_session_new(const struct pop3_settings *settings,
				      const struct pop3_backend *backend, void *ctx);
void pop3_session_free(struct pop3_session **s);

enum pop3_want pop3_session_input(struct pop3_session *s, const void *data, size_t len);
enum pop3_want pop3_session_resume(struct pop3_session *s);
/* user: the authenticated, normalised user for POP3_AUTH_OK; challenge:
 * base64 text for POP3_AUTH_CONTINUE. */
enum pop3_want pop3_session_auth_result(struct pop3_session *s, enum pop3_auth_status status,
					const char *user, const char *challenge);
/* The maildrop is open: rc POP3_MAILDROP_*; msgs/count is the session's
 * snapshot, owned by the backend and valid until maildrop_close. */
enum pop3_want pop3_session_maildrop_opened(struct pop3_session *s, int rc,
					    const struct pop3_message *msgs, size_t count);
/* The QUIT deletions are done: rc 0, or <0 when some were not removed
 * (answered -ERR [SYS/TEMP]). The session then closes. */
enum pop3_want pop3_session_commit_done(struct pop3_session *s, int rc);
/* TLS is up: the session forgets everything learned before it. new_settings
 * carry the post-TLS mechanism list (NULL keeps the old one). */
enum pop3_want pop3_session_tls_started(struct pop3_session *s, const struct pop3_settings *new_settings);
/* The server is stopping: say so and close (deletions are not committed). */
enum pop3_want pop3_session_shutdown(struct pop3_session *s);
/* The authenticated user, or NULL. */
const char *pop3_session_user(const struct pop3_session *s);

/* What the session did, for its log line. */
struct pop3_session_stats {
	unsigned retr;  /* RETR commands whose message was sent */
	unsigned top;   /* TOP commands whose message part was sent */
	bool quit;      /* QUIT was received (the UPDATE state was entered, if logged in) */
};
void pop3_session_stats(const struct pop3_session *s, struct pop3_session_stats *stats_r);

#endif
