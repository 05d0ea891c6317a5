/*
 * Logging through libqb (see log.h). libqb owns the targets (stderr,
 * syslog, file) and the blackbox ring; this file owns the line format and
 * the choice of target. Messages are formatted here once and handed to
 * libqb under one mutex, so lines from worker threads never interleave.
 */
#include "node/log.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <qb/qblog.h>

#define LOG_LINE_MAX 2048
#define BLACKBOX_SIZE (1024 * 1024)

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool log_ready;
static unsigned log_node_id;
static int log_file_target = -1;
static int log_active_target = QB_LOG_STDERR;

static const struct {
	const char *name;
	int level;
} log_levels[] = {
	{ "debug", LOG_DEBUG }, { "info", LOG_INFO },   { "notice", LOG_NOTICE },
	{ "warning", LOG_WARNING }, { "err", LOG_ERR }, { "error", LOG_ERR },
	{ "crit", LOG_CRIT },
};

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (strcasecmp(name, log_levels[i].name) == 0)
			return log_levels[i].level;
	return -1;
}

static void log_set_format(int target)
{
	char fmt[64];
	/* syslog stamps its own time and host */
	if (target == QB_LOG_SYSLOG)
		snprintf(fmt, sizeof(fmt), "node=%u %%p %%b", log_node_id);
	else
		snprintf(fmt, sizeof(fmt), "%%T node=%u %%p %%b", log_node_id);
	qb_log_format_set(target, fmt);
}

/*
 * libqb keeps the blackbox ring in /dev/shm/qb-<ident>-<pid>-blackbox-*
 * and removes it on a clean exit, but a killed process leaves it behind
 * (1 MiB each). A later process that gets the same pid then cannot create
 * its ring and runs without a blackbox. So, before creating ours, remove
 * the rings of processes that no longer exist.
 */
static void log_blackbox_sweep(const char *ident)
{
	char prefix[128];
	size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "qb-%s-", ident);
	DIR *d = opendir("/dev/shm");
	struct dirent *de;

	if (d == NULL || plen >= sizeof(prefix)) {
		if (d != NULL)
			closedir(d);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char *end;
		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		long pid = strtol(de->d_name + plen, &end, 10);
		if (pid <= 0 || strncmp(end, "-blackbox-", 10) != 0)
			continue;
		if (pid == (long)getpid() || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

void log_init(const char *ident, unsigned node_id)
{
	log_blackbox_sweep(ident);
	pthread_mutex_lock(&log_lock);
	log_node_id = node_id;
	qb_log_init(ident, LOG_MAIL, LOG_INFO);
	qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, QB_FALSE);
	qb_log_ctl(QB_LOG_STDERR, QB_LOG_CONF_ENABLED, QB_TRUE);
	qb_log_filter_ctl(QB_LOG_STDERR, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", LOG_INFO);
	log_set_format(QB_LOG_STDERR);
	log_set_format(QB_LOG_SYSLOG);
	/* The blackbox keeps everything, debug included, for post-mortems. */
	qb_log_ctl(QB_LOG_BLACKBOX, QB_LOG_CONF_SIZE, BLACKBOX_SIZE);
	qb_log_filter_ctl(QB_LOG_BLACKBOX, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", LOG_DEBUG);
	log_set_format(QB_LOG_BLACKBOX);
	qb_log_ctl(QB_LOG_BLACKBOX, QB_LOG_CONF_ENABLED, QB_TRUE);
	log_active_target = QB_LOG_STDERR;
	log_ready = true;
	pthread_mutex_unlock(&log_lock);
}

static void log_target_set_level(int target, int level)
{
	qb_log_filter_ctl(target, QB_LOG_FILTER_CLEAR_ALL, QB_LOG_FILTER_FILE, "*", LOG_TRACE);
	qb_log_filter_ctl(target, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", (uint8_t)level);
}

int log_configure(enum log_target target, const char *file, const char *facility,
		  int level, const char **error_r)
{
	int qb_target;

	pthread_mutex_lock(&log_lock);
	switch (target) {
	case LOG_TARGET_STDERR:
		qb_target = QB_LOG_STDERR;
		break;
	case LOG_TARGET_SYSLOG: {
		int fac = qb_log_facility2int(facility ? facility : "mail");
		if (fac < 0) {
			pthread_mutex_unlock(&log_lock);
			*error_r = "unknown syslog facility";
			return -1;
		}
		qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_FACILITY, fac);
		qb_target = QB_LOG_SYSLOG;
		break;
	}
	case LOG_TARGET_FILE: {
		int t = qb_log_file_open(file);
		if (t < 0) {
			pthread_mutex_unlock(&log_lock);
			*error_r = "cannot open log file";
			return -1;
		}
		if (log_file_target >= 0 && log_file_target != t)
			qb_log_file_close(log_file_target);
		log_file_target = t;
		log_set_format(t);
		qb_target = t;
		break;
	}
	default:
		pthread_mutex_unlock(&log_lock);
		*error_r = "unknown log target";
		return -1;
	}
	if (qb_target != log_active_target) {
		qb_log_ctl(log_active_target, QB_LOG_CONF_ENABLED, QB_FALSE);
		if (log_active_target == log_file_target && qb_target != log_file_target) {
			qb_log_file_close(log_file_target);
			log_file_target = -1;
		}
	}
	log_target_set_level(qb_target, level);
	qb_log_ctl(qb_target, QB_LOG_CONF_ENABLED, QB_TRUE);
	log_active_target = qb_target;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void log_msg(int priority, const char *subsystem, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	int n = snprintf(line, sizeof(line), "[%s] ", subsystem);
	va_list ap;

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* one event, one line: never let a value break the line */
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	pthread_mutex_lock(&log_lock);
	if (log_ready)
		qb_log_from_external_source(subsystem, subsystem, "%s", (uint8_t)priority, 0, 0, line);
	else if (priority <= LOG_INFO)
		fprintf(stderr, "%s\n", line);
	pthread_mutex_unlock(&log_lock);
}

int log_blackbox_dump(const char *path)
{
	return qb_log_blackbox_write_to_file(path) < 0 ? -1 : 0;
}

void log_fini(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_ready) {
		qb_log_fini();
		log_ready = false;
		log_file_target = -1;
	}
	pthread_mutex_unlock(&log_lock);
}
