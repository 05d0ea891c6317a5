/*
 * Control client: what mailctl uses to talk to a running maild (see
 * control.h). A daemon is "running" when its control socket accepts a
 * connection; a socket file left by a killed daemon refuses, and then
 * mailctl works offline against the store.
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

int control_daemon_running(const char *run_dir)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/control.sock", run_dir);
	int fd, rc;

	if (n < 0 || (size_t)n >= sizeof(sun.sun_path))
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return rc == 0 ? 1 : 0;
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

int control_call(const char *run_dir, int argc, char **argv, int timeout_ms,
		 struct textbuf *out, struct textbuf *err)
{
	void *zctx = zmq_ctx_new();
	void *s = client_socket(zctx, ZMQ_REQ, run_dir, "control.sock", timeout_ms, err);
	struct textbuf code = TEXTBUF_INIT;
	int rc = -1;

	if (s == NULL)
		goto done;
	if (zmq_send(s, CONTROL_PROTOCOL, strlen(CONTROL_PROTOCOL), argc > 0 ? ZMQ_SNDMORE : 0) < 0)
		goto io_error;
	for (int i = 0; i < argc; i++)
		if (zmq_send(s, argv[i], strlen(argv[i]), i + 1 < argc ? ZMQ_SNDMORE : 0) < 0)
			goto io_error;
	if (recv_frame(s, &code) != 1 || recv_frame(s, out) != 1 || recv_frame(s, err) != 0)
		goto io_error;
	char *end;
	long v = strtol(textbuf_str(&code), &end, 10);
	if (*end != '\0' || v < 0 || v > 255) {
		textbuf_puts(err, "control: malformed reply from maild\n");
		goto done;
	}
	rc = (int)v;
	goto done;
io_error:
	textbuf_printf(err, "control: no answer from maild at %s/control.sock: %s\n", run_dir,
		      zmq_strerror(errno));
done:
	if (s != NULL)
		zmq_close(s);
	zmq_ctx_term(zctx);
	textbuf_free(&code);
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
