/*
 * fd_limit: a process's descriptor limit raised to what it may have.
 * maild holds a descriptor per connection and per open mailbox, and fsck
 * two per mailbox of the user it recounts; the usual soft limit (1024) is
 * far below the hard one.
 */
#ifndef CM_LIB_FD_LIMIT_H
#define CM_LIB_FD_LIMIT_H

/* Raises RLIMIT_NOFILE's soft limit to its hard limit; where that is
 * refused, the limit stays as it was. */
void fd_limit_raise(void);

#endif
