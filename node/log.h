/*
 * Logging through libqb. One line per event:
 *   <time> node=<id> <priority> [<subsystem>] <message>
 * Targets: stderr (foreground), syslog, or a file; plus a libqb blackbox
 * ring in memory that keeps recent lines at debug level and is written to
 * <run_dir>/maild.blackbox on a fatal signal or on request.
 * Safe to call from any thread. Never log secrets.
 */
#ifndef CM_NODE_LOG_H
#define CM_NODE_LOG_H

#include <syslog.h>

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
	LOG_TARGET_FILE,
};

/* Before log_init, messages go to stderr without libqb. */
void log_init(const char *ident, unsigned node_id);
/* (Re)configures the active target and level; file is used for
 * LOG_TARGET_FILE, facility (e.g. "mail") for syslog. 0 or -1 (error_r). */
int log_configure(enum log_target target, const char *file, const char *facility,
		  int level, const char **error_r);
void log_msg(int priority, const char *subsystem, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Writes the blackbox ring to path; 0 or -1. Async-signal-tolerant enough
 * for the fatal-signal path (libqb writes from its ring without malloc). */
int log_blackbox_dump(const char *path);
void log_fini(void);
/* "debug"/"info"/"notice"/"warning"/"err"/"crit" -> LOG_*; -1 if unknown. */
int log_level_parse(const char *name);

#define log_debug(sub, ...) log_msg(LOG_DEBUG, sub, __VA_ARGS__)
#define log_info(sub, ...) log_msg(LOG_INFO, sub, __VA_ARGS__)
#define log_notice(sub, ...) log_msg(LOG_NOTICE, sub, __VA_ARGS__)
#define log_warning(sub, ...) log_msg(LOG_WARNING, sub, __VA_ARGS__)
#define log_error(sub, ...) log_msg(LOG_ERR, sub, __VA_ARGS__)

#endif
