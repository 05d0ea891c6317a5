#include "node/daemonize.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int ready_fd = -1;

int daemonize_start(void)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		char msg[1024];
		ssize_t n, total = 0;
		close(fds[1]);
		while (total < (ssize_t)sizeof(msg) - 1 &&
		       (n = read(fds[0], msg + total, sizeof(msg) - 1 - (size_t)total)) > 0)
			total += n;
		msg[total] = '\0';
		if (total > 0 && msg[0] == '0')
			_exit(0);
		fprintf(stderr, "maild: %s\n", total > 1 ? msg + 1 : "startup failed (see the log)");
		_exit(1);
	}
	close(fds[0]);
	ready_fd = fds[1];
	setsid();
	return 0;
}

static void report(const char *text)
{
	if (ready_fd < 0)
		return;
	ssize_t w = write(ready_fd, text, strlen(text));
	(void)w;
	close(ready_fd);
	ready_fd = -1;
}

void daemonize_ready(void)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	report("0");
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
}

void daemonize_failed(const char *message)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "1%s", message);
	report(buf);
}
