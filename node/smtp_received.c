/*
 * The trace header fields written at the top of every message received
 * over SMTP: Return-Path (RFC 5321 §4.4, added at final delivery, which
 * is what local delivery is) and Received, in the form Postfix writes,
 * because spam filters, support staff and header analysers know it:
 *
 *   Received: from HELO (unknown [192.0.2.1])
 *           (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)
 *           by mx.example.org (clustermail) with ESMTPSA id 0ABCDEFGHJK001
 *           for <rcpt@example.org>; Tue, 3 Oct 2023 10:00:00 +0200
 *
 * - "unknown": no reverse DNS lookup is made (Postfix writes the same
 *   when the lookup fails); the address literal is the truth.
 *   IPv6 literals carry the "IPv6:" tag (RFC 5321 §4.1.3).
 * - protocol (RFC 3848): SMTP after HELO; ESMTP after EHLO, plus S under
 *   TLS and A once authenticated.
 * - the login name is not written (Postfix's default,
 *   smtpd_sasl_authenticated_header = no): "A" says the client
 *   authenticated, the log says as whom.
 * - "for <rcpt>" only when the transaction had exactly one recipient
 *   (the message is stored once for all recipients; listing them would
 *   disclose Bcc recipients to each other).
 * - A client certificate, when one was sent, is named "not verified":
 *   it is recorded, never trusted (node/tls.h).
 * The HELO argument comes from the client: the engine allows only
 * printable ASCII in it, and the characters that would change how the
 * field parses ("(", ")", "\", ";", '"') become "_" here.
 *
 * Pure: no I/O; the caller supplies the time.
 */
#include "node/smtp_received.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/message_date.h"

/* Copies s into out with the characters that matter to Received:
 * parsing replaced. */
static void sanitize(const char *s, char *out, size_t size)
{
	size_t i = 0;
	for (; s[i] != '\0' && i + 1 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[i] = ch < 32 || ch > 126 || strchr("()\\;\"", ch) != NULL ? '_' : (char)ch;
	}
	out[i] = '\0';
}

int smtp_received_peer_literal(const char *peer, char *out, size_t size)
{
	const char *end;
	const char *tag = "";
	if (peer[0] == '[') {
		peer++;
		end = strchr(peer, ']');
		tag = "IPv6:";
	} else {
		end = strrchr(peer, ':');
	}
	if (end == NULL)
		end = peer + strlen(peer);
	int n = snprintf(out, size, "%s%.*s", tag, (int)(end - peer), peer);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

void smtp_received_date(time_t when, char *out, size_t size)
{
	struct tm tm;
	long off = localtime_r(&when, &tm) != NULL ? tm.tm_gmtoff / 60 : 0;
	if (message_date_format((int64_t)when, (int32_t)off, out, size) < 0)
		message_date_format(0, 0, out, size);
}

void smtp_received_format(const struct smtp_received_info *in, struct textbuf *out)
{
	char helo[256], literal[80], subject[256], date[64];

	sanitize(in->helo[0] != '\0' ? in->helo : "unknown", helo, sizeof(helo));
	if (smtp_received_peer_literal(in->peer, literal, sizeof(literal)) < 0)
		snprintf(literal, sizeof(literal), "unknown");
	textbuf_printf(out, "Received: from %s (unknown [%s])\r\n", helo, literal);
	if (in->tls)
		textbuf_printf(out, "\t(using %s with cipher %s)\r\n", in->tls_protocol,
			       in->tls_cipher);
	if (in->tls && in->tls_client_subject != NULL && in->tls_client_subject[0] != '\0') {
		sanitize(in->tls_client_subject, subject, sizeof(subject));
		textbuf_printf(out, "\t(Client certificate %s (not verified))\r\n", subject);
	}
	const char *proto = !in->esmtp			   ? "SMTP"
			    : in->tls && in->authenticated ? "ESMTPSA"
			    : in->tls			   ? "ESMTPS"
			    : in->authenticated		   ? "ESMTPA"
							   : "ESMTP";
	textbuf_printf(out, "\tby %s (clustermail) with %s id %s", in->hostname, proto,
		       in->queue_id);
	smtp_received_date(in->when, date, sizeof(date));
	if (in->for_rcpt != NULL)
		textbuf_printf(out, "\r\n\tfor <%s>; %s\r\n", in->for_rcpt, date);
	else
		textbuf_printf(out, ";\r\n\t%s\r\n", date);
}

void smtp_return_path_format(const char *sender, struct textbuf *out)
{
	textbuf_printf(out, "Return-Path: <%s>\r\n", sender);
}
