/*
 * message_date: the RFC 5322 Date field (3.3) as a point in time, for
 * IMAP SORT DATE, SEARCH SENTBEFORE/SENTON/SENTSINCE and THREAD.
 *
 * Accepted: "[Day,] DD Mon YYYY HH:MM[:SS] zone" with comments and
 * whitespace anywhere, the obsolete forms of RFC 5322 4.3 (two- and
 * three-digit years, alphabetic zones UT/GMT/EST/EDT/CST/CDT/MST/MDT/PST/
 * PDT; military and unknown zones mean +0000), a missing zone (+0000),
 * full month and day names, and trailing junk after the zone. Rejected:
 * anything whose date or time is missing or out of range (day beyond the
 * month, hour > 23, minute > 59, second > 60, zone beyond +-2359, year
 * outside 1900..9999).
 *
 * Pure, bounded by the input, no locale, no libc time functions; the
 * formatter below is the one every generated Date-like field uses.
 */
#ifndef CM_LIB_MESSAGE_DATE_H
#define CM_LIB_MESSAGE_DATE_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0 with *time_r (UTC seconds since 1970-01-01) and *tz_r (zone,
 * minutes east of UTC), or -1 (outputs untouched). */
int message_date_parse(const void *value, size_t len, int64_t *time_r, int32_t *tz_r);

/* The other way: when (UTC seconds) as seen in the zone tz_minutes east of
 * UTC, "Tue, 3 Oct 2023 10:00:00 +0200" (RFC 5322 3.3, English names
 * whatever the locale). 0, or -1 for a year outside 1900..9999, a zone
 * beyond +-2359 or a buffer too small (out then undefined). */
int message_date_format(int64_t when, int32_t tz_minutes, char *out, size_t size);

#endif
