/*
 * The SMTP client protocol engine, for outbound delivery of one message
 * over one connection (RFC 5321, with PIPELINING 2920, SIZE 1870,
 * 8BITMIME 6152, ENHANCEDSTATUSCODES 2034, STARTTLS 3207, DSN 3461,
 * SMTPUTF8 6531). Pure, like the server engine: server bytes in through
 * smtp_client_input(), commands out through backend->write(); connecting,
 * TLS, timeouts and reading the message from the queue are the caller's.
 *
 * Flow control: every entry point returns what the engine waits for.
 *  SMTP_CLIENT_WANT_INPUT  feed more server bytes
 *  SMTP_CLIENT_WANT_TLS    the server answered 220 to STARTTLS: start the
 *                          TLS handshake, then smtp_client_tls_started()
 *                          (or smtp_client_tls_failed())
 *  SMTP_CLIENT_WANT_BODY   the server answered 354 to DATA: stream the
 *                          message through smtp_client_body(), then
 *                          smtp_client_body_end()
 *  SMTP_CLIENT_WANT_DONE   the transaction has its verdict and QUIT is
 *                          queued (or the session failed): flush, close,
 *                          read the results
 *
 * Results. Every recipient ends with a reply of its own: its RCPT
 * refusal, or the final reply to the message (after "." ), or the reply
 * that ended the session early (greeting, EHLO/HELO, MAIL, DATA), or one
 * the engine makes up (smtp_client_abort(), a protocol violation by the
 * server: 451 4.5.0 / "4.4.2" for a lost connection).
 *
 * The server is hostile: reply lines are bounded (SMTP_CLIENT_LINE_MAX),
 * multiline replies too (SMTP_CLIENT_REPLY_LINES_MAX); beyond either, or
 * on garbage, the session ends with a 4.5.0 result for everyone.
 *
 * Verdicts the engine makes up itself:
 *  - server's SIZE limit below message_size: 552 5.3.4, no MAIL sent;
 *  - smtputf8 and no SMTPUTF8 announced: 550 5.6.7, no MAIL sent;
 *  - a recipient address with a control character (or empty): 553 5.1.3
 *    for it, never sent; such a sender: 553 5.1.7 for everyone. An envid
 *    or orcpt that is not printable ASCII without spaces is left out;
 *  - a malformed reply or one that makes no sense where it came:
 *    451 4.5.0 "protocol error: ... (in reply to <stage>)";
 *  - smtp_client_tls_failed(): 451 4.7.5.
 * A 421 reply at any point ends the session (no QUIT: the server is
 * closing). Other refusals of greeting, EHLO+HELO, MAIL, DATA or the
 * message end it with QUIT. EHLO refused with 5xx falls back to HELO (no
 * extensions). STARTTLS refused (4xx/5xx) goes on in plaintext.
 *
 * 8BITMIME: the engine only sends BODY=8BITMIME. When body_8bit is set
 * and the server lacks 8BITMIME (smtp_client_extensions() at WANT_BODY),
 * the caller must downgrade the body (lib/mime_downgrade.h) before
 * streaming it (RFC 6152 3).
 */
#ifndef CM_PROTO_SMTP_CLIENT_H
#define CM_PROTO_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_CLIENT_LINE_MAX 4096
#define SMTP_CLIENT_REPLY_LINES_MAX 100
#define SMTP_CLIENT_TEXT_MAX 512

enum smtp_client_want {
	SMTP_CLIENT_WANT_INPUT,
	SMTP_CLIENT_WANT_TLS,
	SMTP_CLIENT_WANT_BODY,
	SMTP_CLIENT_WANT_DONE,
};

/* Capabilities the server announced in its (last) EHLO reply. */
enum smtp_client_ext {
	SMTP_EXT_PIPELINING = 1 << 0,
	SMTP_EXT_SIZE = 1 << 1,
	SMTP_EXT_8BITMIME = 1 << 2,
	SMTP_EXT_STARTTLS = 1 << 3,
	SMTP_EXT_DSN = 1 << 4,
	SMTP_EXT_ENHANCEDSTATUSCODES = 1 << 5,
	SMTP_EXT_SMTPUTF8 = 1 << 6,
	SMTP_EXT_CHUNKING = 1 << 7,
};

enum smtp_client_ret {
	SMTP_CLIENT_RET_NONE,
	SMTP_CLIENT_RET_FULL,
	SMTP_CLIENT_RET_HDRS,
};

struct smtp_client_rcpt {
	const char *address; /* without <> */
	unsigned notify;     /* DSN NOTIFY bits as enum smtp_notify; 0 = none sent */
	const char *orcpt;   /* "rfc822;xtext" or NULL */
};

struct smtp_client_settings {
	const char *helo_name;
	bool starttls;	    /* issue STARTTLS when the server offers it */
	bool tls_active;    /* the connection is already TLS (SMTPS relayhost) */
	const char *sender; /* "" for <> */
	const struct smtp_client_rcpt *rcpts;
	size_t nrcpt;
	uint64_t message_size; /* sent as SIZE= when the server has SIZE */
	bool body_8bit;	       /* BODY=8BITMIME when the server has 8BITMIME */
	bool smtputf8;	       /* SMTPUTF8 on MAIL; refused (5.6.7) if the server lacks it */
	const char *envid;     /* DSN ENVID (xtext) or NULL */
	enum smtp_client_ret ret;
};

struct smtp_client_backend {
	void (*write)(void *ctx, const void *data, size_t len);
};

/* text holds no codes (neither the 3-digit one nor the enhanced one of
 * each line), only printable ASCII (other bytes become '?'), cut at
 * SMTP_CLIENT_TEXT_MAX - 1. enhanced is taken from the first line when it
 * starts with class.subject.detail of the reply's class, announced
 * ENHANCEDSTATUSCODES or not. */
struct smtp_client_reply {
	int code;			    /* 0 = none yet */
	char enhanced[16];		    /* "5.1.1", or "" */
	char text[SMTP_CLIENT_TEXT_MAX];    /* the reply's text, lines joined by " " */
};

struct smtp_client;

/* Strings and the recipient array are copied. NULL on out of memory.
 * The engine waits for the greeting (WANT_INPUT). */
struct smtp_client *smtp_client_new(const struct smtp_client_settings *settings,
				    const struct smtp_client_backend *backend, void *ctx);
void smtp_client_free(struct smtp_client **c);

enum smtp_client_want smtp_client_input(struct smtp_client *c, const void *data, size_t len);
/* After WANT_TLS: the handshake succeeded; EHLO is sent again and the
 * capabilities announced before TLS are forgotten. */
enum smtp_client_want smtp_client_tls_started(struct smtp_client *c);
/* After WANT_TLS: the handshake failed. Every recipient gets 451 4.7.5
 * "TLS handshake failed"; no QUIT (the connection is in no known state).
 * Returns WANT_DONE. */
enum smtp_client_want smtp_client_tls_failed(struct smtp_client *c);
/* The message, raw as stored (LF or CRLF line ends): the engine converts
 * line ends to CRLF and dot-stuffs. */
void smtp_client_body(struct smtp_client *c, const void *data, size_t len);
enum smtp_client_want smtp_client_body_end(struct smtp_client *c);
/* The connection failed or timed out (or TLS failed): every recipient
 * without a verdict gets code/enhanced/text (e.g. 421 "4.4.2" "lost
 * connection with mx.example[192.0.2.1] while sending RCPT TO"). */
enum smtp_client_want smtp_client_abort(struct smtp_client *c, int code, const char *enhanced,
					const char *text);

/* The command whose reply the engine waits for (in a pipelined batch,
 * the first one still without its reply), for diagnostics like Postfix's
 * "while sending ...": "greeting" (before anything is sent), "EHLO",
 * "HELO", "STARTTLS", "MAIL FROM", "RCPT TO", "DATA", "message body"
 * (while streaming), "end of data", "QUIT". */
const char *smtp_client_stage(const struct smtp_client *c);
/* Whether the server greeted with 220 (false: no greeting yet, or one
 * that refused the session). */
bool smtp_client_greeted(const struct smtp_client *c);
unsigned smtp_client_extensions(const struct smtp_client *c);
bool smtp_client_tls(const struct smtp_client *c);
/* Per recipient, in the order of settings->rcpts; valid after WANT_DONE. */
const struct smtp_client_reply *smtp_client_rcpt_reply(const struct smtp_client *c, size_t i);

#endif
