/*
 * sendmail -bs: SMTP on stdin/stdout, as Postfix's sendmail -bs, with the
 * server engine of proto/smtp. The caller is a local user: no AUTH, no
 * STARTTLS; any syntactically valid sender and recipient is accepted
 * (unqualified recipients, "Postmaster" among them, get @hostname) and
 * each message goes into the maildrop through the same filter and commit
 * as sendmail's stdin (sendmail_submit.c). The 250 after DATA comes only
 * after queue_writer_commit returned, so it means durable.
 *
 * Local scripts often end lines with a bare LF: on this path a LF not
 * preceded by CR is read as CRLF. The engine's smuggling defence (bare
 * LF rejected) is for mail from the network; here the client is already
 * a local user who could submit anything directly.
 */
#include "node/sendmail.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "node/node_config.h"
#include "proto/smtp/smtp.h"

#define BS_READ_CHUNK 16384

struct bs {
	const struct node_config *cfg;
	struct queue *maildrop;
	const struct sendmail_submitter *who;
	int out;
	bool out_failed;
	struct sendmail_submit sub;
	bool in_data;	    /* a message is being written */
	int data_error;	    /* exit-code style error of the message, 0 = none */
	struct textbuf err; /* why, for the reply */
	bool commit_wanted;
};

static void bs_write(void *ctx, const void *data, size_t len)
{
	struct bs *bs = ctx;
	const char *p = data;
	while (len > 0 && !bs->out_failed) {
		ssize_t n = write(bs->out, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			bs->out_failed = true;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void bs_auth_begin(void *ctx, const struct smtp_auth_request *req)
{
	(void)ctx, (void)req; /* no mechanism is offered: answered after the call */
}

static void bs_forget(struct bs *bs)
{
	sendmail_submit_abort(&bs->sub);
	bs->in_data = false;
	bs->data_error = 0;
	textbuf_truncate(&bs->err, 0);
}

static void bs_mail_from(void *ctx, const char *reverse_path, const struct smtp_mail_params *p,
			 struct smtp_reply *reply)
{
	struct bs *bs = ctx;
	(void)p, (void)reply;
	bs_forget(bs);
	bs->sub.cfg = bs->cfg;
	snprintf(bs->sub.env.sender, sizeof(bs->sub.env.sender), "%s", reverse_path);
}

static void bs_rcpt_to(void *ctx, const char *forward_path, const struct smtp_rcpt_params *p,
		       struct smtp_reply *reply)
{
	struct bs *bs = ctx;
	char mailbox[SMTP_PATH_MAX + 1];
	const char *at = strrchr(forward_path, '@');
	(void)p;

	snprintf(mailbox, sizeof(mailbox), "%.*s", at ? (int)(at - forward_path) : (int)strlen(forward_path),
		 forward_path);
	textbuf_truncate(&bs->err, 0);
	int rc = sendmail_add_rcpt(&bs->sub, mailbox, at ? at + 1 : "", &bs->err);
	if (rc == SENDMAIL_EX_DATAERR)
		*reply = (struct smtp_reply){ 452, "4.5.3", "Too many recipients" };
	else if (rc != SENDMAIL_EX_OK)
		*reply = (struct smtp_reply){ 553, "5.1.3", "Bad recipient address syntax" };
}

static void bs_data_begin(void *ctx, struct smtp_reply *reply)
{
	struct bs *bs = ctx;
	char sender[QUEUE_ADDRESS_MAX];

	snprintf(sender, sizeof(sender), "%s", bs->sub.env.sender);
	textbuf_truncate(&bs->err, 0);
	if (sendmail_submit_begin(&bs->sub, bs->cfg, bs->maildrop, bs->who, sender, false, &bs->err) !=
	    SENDMAIL_EX_OK) {
		fputs(textbuf_str(&bs->err), stderr);
		*reply = (struct smtp_reply){ 451, "4.3.0", "Cannot write into the maildrop" };
		return;
	}
	bs->in_data = true;
}

static int bs_data_write(void *ctx, const void *data, size_t len)
{
	struct bs *bs = ctx;
	bool done;
	if (!bs->in_data || bs->data_error != 0)
		return -1;
	bs->data_error = sendmail_submit_feed(&bs->sub, data, len, &done, &bs->err);
	return bs->data_error != 0 ? -1 : 0;
}

static void bs_data_commit(void *ctx, bool accepted, const struct smtp_reply *refusal)
{
	struct bs *bs = ctx;
	(void)refusal; /* the client, on stdin/stdout, hears it: nothing to log */
	if (accepted)
		bs->commit_wanted = true; /* done after the engine returns */
	else
		bs_forget(bs);
}

static void bs_reset(void *ctx)
{
	struct bs *bs = ctx;
	if (!bs->commit_wanted)
		bs_forget(bs);
}

static const struct smtp_backend bs_backend = {
	.write = bs_write,
	.auth_begin = bs_auth_begin,
	.mail_from = bs_mail_from,
	.rcpt_to = bs_rcpt_to,
	.data_begin = bs_data_begin,
	.data_write = bs_data_write,
	.data_commit = bs_data_commit,
	.reset = bs_reset,
};

static enum smtp_want bs_commit(struct bs *bs, struct smtp_session *sess)
{
	char id[QUEUE_ID_MAX];
	int rc = bs->data_error;

	bs->commit_wanted = false;
	snprintf(id, sizeof(id), "%s", bs->sub.env.id);
	if (rc == SENDMAIL_EX_OK)
		rc = sendmail_submit_commit(&bs->sub, &bs->err);
	if (rc != SENDMAIL_EX_OK)
		fputs(textbuf_str(&bs->err), stderr);
	struct smtp_reply reply = { 0 };
	if (rc == SENDMAIL_EX_DATAERR)
		reply = (struct smtp_reply){ 552, "5.3.4", "Message too large" };
	else if (rc != SENDMAIL_EX_OK)
		reply = (struct smtp_reply){ 451, "4.3.0", "Cannot queue the message; try again later" };
	bs_forget(bs);
	return smtp_session_commit_result(sess, rc == SENDMAIL_EX_OK ? NULL : &reply, id);
}

int sendmail_bs_run(const struct node_config *cfg, struct queue *maildrop,
		    const struct sendmail_submitter *who, int in, int out)
{
	struct bs bs = { .cfg = cfg, .maildrop = maildrop, .who = who, .out = out };
	struct smtp_settings set = {
		.hostname = cfg->hostname,
		.sasl_mechanisms = "",
		.plaintext_auth_allowed = true, /* so that AUTH gets 504, not "encrypt first" */
		.max_message_size = cfg->smtp.max_message_size,
		.max_recipients = cfg->smtp.max_recipients,
		/* no CHUNKING: the bare-LF repair below would change a BDAT
		 * chunk's octet count */
		.chunking = false,
	};
	char buf[BS_READ_CHUNK], crlf[2 * BS_READ_CHUNK];
	bool prev_cr = false;

	bs.sub.cfg = cfg;
	struct smtp_session *sess = smtp_session_new(&set, &bs_backend, &bs);
	if (sess == NULL) {
		fputs("sendmail: out of memory\n", stderr);
		return SENDMAIL_EX_SOFTWARE;
	}
	enum smtp_want want = SMTP_WANT_INPUT;
	while (want != SMTP_WANT_CLOSE && want != SMTP_WANT_TLS && !bs.out_failed) {
		if (want == SMTP_WANT_COMMIT) {
			want = bs_commit(&bs, sess);
			continue;
		}
		if (want == SMTP_WANT_AUTH) {
			want = smtp_session_auth_result(sess, SMTP_AUTH_UNSUPPORTED, NULL, NULL);
			continue;
		}
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t m = 0;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' && !prev_cr)
				crlf[m++] = '\r';
			crlf[m++] = buf[i];
			prev_cr = buf[i] == '\r';
		}
		want = smtp_session_input(sess, crlf, m);
	}
	smtp_session_free(&sess);
	bs_forget(&bs);
	textbuf_free(&bs.err);
	return SENDMAIL_EX_OK;
}
