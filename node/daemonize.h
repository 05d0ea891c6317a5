/*
 * Background start: the parent process waits until the child reports that
 * it is serving (or why it failed), so `maild` without --foreground exits
 * 0 only when the node is really up, and startup errors reach the terminal.
 * Call before any thread exists.
 */
#ifndef CM_NODE_DAEMONIZE_H
#define CM_NODE_DAEMONIZE_H

/* Forks; returns in the child (new session, stdio on /dev/null later at
 * daemonize_ready). The parent never returns. 0 or -1. */
int daemonize_start(void);
/* Child: startup finished; release the parent with exit code 0. */
void daemonize_ready(void);
/* Child: startup failed; the parent prints message and exits 1. */
void daemonize_failed(const char *message);

#endif
