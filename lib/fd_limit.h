/*
 * fd_limit: a process's descriptor limit raised to what it may have.
 * maild holds a descriptor per connection and per open mailbox, and fsck
 * two per mailbox of the user it recounts; the usual soft limit (1024) is
 * far below the hard one.
 */
#ifndef CM_LIB_FD_LIMIT_H
#define CM_LIB_FD_LIMIT_H

/* Raises RLIMIT_NOFILE's soft limit to its hard limit. Returns the soft
 * limit now in force (the old one if it could not be raised), or -1 when
 * it cannot be read. */
long fd_limit_raise(void);

#endif
