/*
 * Control client: what mailctl uses to talk to a running maild (see
 * control.h). A daemon is "running" when its control socket accepts a
 * connection; a socket file left by a killed daemon refuses, and then
 * mailctl works offline against the store. A command is one plain
 * connection (the server's ZMQ_STREAM socket speaks raw bytes): the
 * request in lib/control_wire's format out, the reply in, then close.
 * Events come from the PUB socket through libzmq.
 */
#include "node/control.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "lib/control_wire.h"

/* A connection to <run_dir>/control.sock: the descriptor, or -1 with
 * *why (a static text). */
static int control_connect(const char *run_dir, const char **why)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/control.sock", run_dir);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		*why = "run_dir path too long for a unix socket";
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	if (fd < 0)
		*why = strerror(errno);
	return fd;
}

int control_daemon_running(const char *run_dir)
{
	const char *why;
	int fd = control_connect(run_dir, &why);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static void *client_socket(void *zctx, int type, const char *run_dir, const char *name,
			   int timeout_ms, struct textbuf *err)
{
	char endpoint[1200];
	void *s = zmq_socket(zctx, type);
	int linger = 0;

	if (s == NULL) {
		textbuf_printf(err, "control: %s\n", zmq_strerror(errno));
		return NULL;
	}
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
	zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
	snprintf(endpoint, sizeof(endpoint), "ipc://%s/%s", run_dir, name);
	if (zmq_connect(s, endpoint) < 0) {
		textbuf_printf(err, "control: cannot connect to %s: %s\n", endpoint, zmq_strerror(errno));
		zmq_close(s);
		return NULL;
	}
	return s;
}

/* Appends one received frame to sb; returns 1 if more frames follow, 0 if
 * not, -1 on error/timeout. */
static int recv_frame(void *s, struct textbuf *sb)
{
	zmq_msg_t msg;
	int more = 0;
	size_t more_size = sizeof(more);

	zmq_msg_init(&msg);
	if (zmq_msg_recv(&msg, s, 0) < 0) {
		zmq_msg_close(&msg);
		return -1;
	}
	if (sb != NULL)
		textbuf_append(sb, zmq_msg_data(&msg), zmq_msg_size(&msg));
	zmq_getsockopt(s, ZMQ_RCVMORE, &more, &more_size);
	zmq_msg_close(&msg);
	return more ? 1 : 0;
}

/* Waits up to timeout_ms for events on fd. 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int rc;
	do
		rc = poll(&pfd, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	return rc;
}

/* Sends the whole request; each wait for room is at most timeout_ms.
 * 0 or -1 (errno; ETIMEDOUT for a timeout). */
static int send_all(int fd, const char *data, size_t len, int timeout_ms)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		int rc = wait_fd(fd, POLLOUT, timeout_ms);
		if (rc <= 0) {
			if (rc == 0)
				errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

/* Reads the reply into d; each wait for bytes is at most timeout_ms (a
 * command may run that long). 0, or -1 with why. */
static int recv_reply(int fd, struct control_wire_decoder *d, int timeout_ms, const char **why_r)
{
	char buf[65536];
	for (;;) {
		int rc = wait_fd(fd, POLLIN, timeout_ms);
		if (rc <= 0) {
			*why_r = rc == 0 ? "timed out" : strerror(errno);
			return -1;
		}
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			*why_r = n == 0 ? "closed without an answer (too many control connections?)"
					: strerror(errno);
			return -1;
		}
		size_t used;
		enum control_wire_result r = control_wire_decode(d, buf, (size_t)n, &used);
		if (r == CONTROL_WIRE_DONE)
			return 0;
		if (r == CONTROL_WIRE_ERROR) {
			*why_r = d->error;
			return -1;
		}
	}
}

int control_call(const char *run_dir, int argc, char **argv, int timeout_ms,
		 struct textbuf *out, struct textbuf *err)
{
	/* The daemon is trusted: the reply is as large as the command's output. */
	static const struct control_wire_limits reply_limits = {
		.max_items = 3, .max_item = UINT32_MAX, .max_total = SIZE_MAX, .refuse_nul = false
	};
	struct textbuf req = TEXTBUF_INIT;
	struct control_wire_decoder d;
	const char *why = NULL;
	int rc = -1, fd = -1;

	control_wire_decoder_init(&d, &reply_limits);
	const char **items = calloc((size_t)argc + 1, sizeof(*items));
	if (items == NULL) {
		why = "out of memory";
		goto done;
	}
	items[0] = CONTROL_PROTOCOL;
	for (int i = 0; i < argc; i++)
		items[i + 1] = argv[i];
	control_wire_encode(&req, (uint32_t)argc + 1, items, NULL);
	free(items);
	if ((fd = control_connect(run_dir, &why)) < 0)
		goto done;
	if (send_all(fd, req.data, req.len, timeout_ms) < 0) {
		why = strerror(errno);
		goto done;
	}
	if (recv_reply(fd, &d, timeout_ms, &why) < 0)
		goto done;
	if (d.count != 3) {
		why = "malformed reply";
		goto done;
	}
	textbuf_append(out, d.items[1], d.lens[1]);
	textbuf_append(err, d.items[2], d.lens[2]);
	char *end;
	long v = strtol(d.items[0], &end, 10);
	if (d.lens[0] == 0 || *end != '\0' || v < 0 || v > 255) {
		textbuf_puts(err, "control: malformed reply from maild\n");
		goto done_quiet;
	}
	rc = (int)v;
	goto done_quiet;
done:
	textbuf_printf(err, "control: no answer from maild at %s/control.sock: %s\n", run_dir, why);
done_quiet:
	if (fd >= 0)
		close(fd);
	if (req.data != NULL)
		explicit_bzero(req.data, req.len); /* requests can carry secrets */
	textbuf_free(&req);
	control_wire_decoder_free(&d);
	return rc;
}

int control_follow_events(const char *run_dir, const char *topic_prefix, unsigned count,
			  int timeout_ms, struct textbuf *err)
{
	void *zctx = zmq_ctx_new();
	void *s = client_socket(zctx, ZMQ_SUB, run_dir, "events.sock",
				timeout_ms > 0 ? timeout_ms : -1, err);
	unsigned seen = 0;
	int rc = -1;

	if (s == NULL)
		goto done;
	zmq_setsockopt(s, ZMQ_SUBSCRIBE, topic_prefix, strlen(topic_prefix));
	for (;;) {
		struct textbuf ev = TEXTBUF_INIT;
		int r = recv_frame(s, &ev);
		if (r < 0) {
			textbuf_free(&ev);
			if (errno == EAGAIN)
				rc = 0; /* quiet for timeout_ms: done */
			else
				textbuf_printf(err, "events: %s\n", zmq_strerror(errno));
			break;
		}
		printf("%s\n", textbuf_str(&ev));
		fflush(stdout);
		textbuf_free(&ev);
		if (count > 0 && ++seen >= count) {
			rc = 0;
			break;
		}
	}
done:
	if (s != NULL)
		zmq_close(s);
	zmq_ctx_term(zctx);
	return rc;
}
