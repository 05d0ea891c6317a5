/*
 * Internals of the sendmail command (node/sendmail.c is its manual),
 * shared by its files:
 *
 *  sendmail.c          options, argv[0] modes (mailq, newaliases), -bp,
 *                      -bi, -q, exit codes
 *  sendmail_message.c  the message filter: local line ends to CRLF, the
 *                      lone "." end, header fields added and removed as
 *                      Postfix's cleanup does for local mail, -t's
 *                      recipients (pure: bytes in, bytes out)
 *  sendmail_submit.c   the envelope and the message into the maildrop
 *                      (queue id, queue_writer, commit)
 *  sendmail_bs.c       -bs: the SMTP engine on stdin/stdout
 */
#ifndef CM_NODE_SENDMAIL_H
#define CM_NODE_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lib/textbuf.h"
#include "storage/queue.h"

/* sysexits.h values, as sendmail and Postfix exit with them. */
enum sendmail_exit {
	SENDMAIL_EX_OK = 0,
	SENDMAIL_EX_USAGE = 64,
	SENDMAIL_EX_DATAERR = 65,
	SENDMAIL_EX_NOUSER = 67,
	SENDMAIL_EX_SOFTWARE = 70,
	SENDMAIL_EX_TEMPFAIL = 75,
};

/* The message header we hold before writing it (added fields need it
 * whole); a longer header is refused. */
#define SENDMAIL_HEADER_MAX (256 * 1024)
/* Body lines are written in pieces of at most this much. */
#define SENDMAIL_LINE_PIECE 65536

struct node_config;
struct store;

/* Who submits, and what sendmail was told. */
struct sendmail_submitter {
	uid_t uid;
	char login[64];
	char gecos[128];      /* the passwd full name, "" if none */
	const char *full_name; /* -F, or NULL */
	const char *sender;    /* -f, or NULL: login@hostname */
	bool extract;	       /* -t */
	bool dot_ends;	       /* not -i: a lone "." line ends stdin */
	bool verbose;	       /* -v */
};

/* ---- sendmail_message.c ---- */

enum sendmail_message_status {
	SENDMAIL_MSG_OK = 0,
	SENDMAIL_MSG_DONE = 1,		   /* the lone "." was read: ignore the rest */
	SENDMAIL_MSG_TOO_BIG = -1,	   /* over max_size */
	SENDMAIL_MSG_HEADER_TOO_BIG = -2, /* over SENDMAIL_HEADER_MAX */
	SENDMAIL_MSG_WRITE = -3,	   /* the write callback failed */
	SENDMAIL_MSG_RCPT = -4,		   /* the recipient callback refused (-t) */
};

struct sendmail_message_settings {
	const char *hostname;
	const char *queue_id;
	time_t now;
	uid_t uid;
	const char *from_header; /* the From: value to add when the message has none */
	bool dot_ends;		 /* a lone "." line ends the input */
	bool skip_from_line;	 /* a first line "From ..." (mbox) is dropped */
	bool extract;		 /* -t: To/Cc/Bcc (or the Resent- ones) to rcpt() */
	uint64_t max_size;	 /* bytes written, 0 = no limit */
	/* Output (CRLF line ends); <0 fails the message. */
	int (*write)(void *ctx, const void *data, size_t len);
	/* -t: one recipient, mailbox@host as the header has it (host may be
	 * ""); <0 fails the message. */
	int (*rcpt)(void *ctx, const char *mailbox, const char *host);
	void *ctx;
};

struct sendmail_message {
	struct sendmail_message_settings set;
	bool in_body, done, first_line;
	struct textbuf line;	    /* the line being assembled */
	bool line_continued;	    /* part of this line was already written */
	struct textbuf header;	    /* fields kept, CRLF-terminated */
	struct textbuf fields;	    /* extract: the To/Cc/Bcc values, NUL-separated */
	struct textbuf resent;	    /* extract: the Resent-To/Cc/Bcc values */
	bool has_from, has_date, has_message_id;
	bool in_field, in_dropped, in_wanted, in_resent; /* the field being read */
	uint64_t written;
	bool body_8bit;
};

void sendmail_message_init(struct sendmail_message *m, const struct sendmail_message_settings *set);
/* Returns SENDMAIL_MSG_OK (more wanted), DONE or an error; after DONE or
 * an error, further input is ignored. */
int sendmail_message_feed(struct sendmail_message *m, const void *data, size_t len);
/* End of input: flushes the last line (and the header of a message
 * without body). OK or an error. */
int sendmail_message_finish(struct sendmail_message *m);
void sendmail_message_free(struct sendmail_message *m);
const char *sendmail_message_strerror(int status);

/* ---- sendmail_submit.c ---- */

struct sendmail_submit {
	const struct node_config *cfg;
	struct queue *maildrop;
	struct queue_envelope env;
	struct queue_writer *writer;
	struct sendmail_message msg;
	char from_header[512];
	bool msg_started;
	struct textbuf rcpt_errors; /* -t: why a header recipient was refused */
};

/* Envelope sender for a submitter: -f (validated; "" or "<>" = null
 * sender), else login@hostname. SENDMAIL_EX_OK or EX_NOUSER (err). */
int sendmail_sender(const struct node_config *cfg, const struct sendmail_submitter *who,
		    char out[QUEUE_ADDRESS_MAX], struct textbuf *err);
/* Adds a recipient address list (as on the command line or in To:):
 * unqualified names get @hostname; duplicates are dropped. EX_OK,
 * EX_NOUSER (malformed), EX_DATAERR (too many). */
int sendmail_add_rcpts(struct sendmail_submit *s, const char *list, struct textbuf *err);
/* One recipient mailbox@host ("" host: @hostname). Same returns. */
int sendmail_add_rcpt(struct sendmail_submit *s, const char *mailbox, const char *host,
		      struct textbuf *err);
/* Opens a new message in the maildrop: queue id, writer, filter. */
int sendmail_submit_begin(struct sendmail_submit *s, const struct node_config *cfg,
			  struct queue *maildrop, const struct sendmail_submitter *who,
			  const char *sender, bool from_stdin, struct textbuf *err);
/* Message bytes; DONE when stdin's "." was seen. Exit code on error. */
int sendmail_submit_feed(struct sendmail_submit *s, const void *data, size_t len, bool *done_r,
			 struct textbuf *err);
/* Finishes the message and commits it durably into the maildrop.
 * EX_OK (queue id in s->env.id), or an exit code (err). */
int sendmail_submit_commit(struct sendmail_submit *s, struct textbuf *err);
/* Frees everything; a message not committed is dropped (nothing stays
 * in the maildrop). Clears s->env, the queue id with it. */
void sendmail_submit_abort(struct sendmail_submit *s);

/* ---- sendmail_bs.c ---- */

/* SMTP on fds in/out until QUIT or end of input. Exit code. */
int sendmail_bs_run(const struct node_config *cfg, struct queue *maildrop,
		    const struct sendmail_submitter *who, int in, int out);

#endif
