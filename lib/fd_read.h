/*
 * Small helpers for reading what is already on disk and timing work:
 * a file range handed to a callback in pieces (never whole in memory),
 * and the seconds elapsed on the monotonic clock.
 */
#ifndef CM_LIB_FD_READ_H
#define CM_LIB_FD_READ_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Reads [0, len) of fd with pread in pieces of at most 64 KiB and hands
 * each to cb (which returns <0 to stop: that value is returned). 0, or
 * -1 with errno set (a short file: EIO). */
int fd_read_range(int fd, uint64_t len, int (*cb)(const void *data, size_t n, void *ctx),
		  void *ctx);

/* Seconds since start (taken with CLOCK_MONOTONIC). */
double elapsed_since(const struct timespec *start);

#endif
