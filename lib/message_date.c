#include "lib/message_date.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/rfc822_header.h"

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Up to max_digits digits; returns how many were read (0 if none). */
static int read_number(struct rfc822_cursor *c, int max_digits, int *value_r)
{
	int n = 0, v = 0;
	while (c->p < c->end && is_digit(*c->p) && n < max_digits) {
		v = v * 10 + (*c->p - '0');
		c->p++;
		n++;
	}
	if (c->p < c->end && is_digit(*c->p))
		return 0; /* too many digits */
	*value_r = v;
	return n;
}

static size_t read_word(struct rfc822_cursor *c, char *buf, size_t size)
{
	size_t n = 0;
	while (c->p < c->end && is_alpha(*c->p)) {
		if (n + 1 < size)
			buf[n++] = (char)(*c->p | 0x20);
		c->p++;
	}
	buf[n] = '\0';
	return n;
}

static int month_number(const char *word)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	if (strlen(word) < 3)
		return -1;
	for (int i = 0; i < 12; i++) {
		if (strncmp(months + i * 3, word, 3) == 0)
			return i + 1;
	}
	return -1;
}

static int zone_minutes(const char *word)
{
	static const struct {
		const char *name;
		int minutes;
	} zones[] = {
	    {"ut", 0},	      {"gmt", 0},	{"utc", 0},	  {"z", 0},
	    {"est", -5 * 60}, {"edt", -4 * 60}, {"cst", -6 * 60}, {"cdt", -5 * 60},
	    {"mst", -7 * 60}, {"mdt", -6 * 60}, {"pst", -8 * 60}, {"pdt", -7 * 60},
	};
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		if (strcmp(zones[i].name, word) == 0)
			return zones[i].minutes;
	}
	return 0; /* RFC 5322 4.3: military and unknown zones are -0000 */
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int message_date_parse(const void *value, size_t len, int64_t *time_r, int32_t *tz_r)
{
	struct rfc822_cursor c;
	char word[16];
	int day, month, year, hour, minute, second = 0, tz = 0;

	rfc822_cursor_init(&c, value, len);
	rfc822_skip_cfws(&c, NULL);
	if (c.p < c.end && is_alpha(*c.p)) {
		read_word(&c, word, sizeof(word)); /* day of week */
		rfc822_skip_cfws(&c, NULL);
		if (c.p < c.end && *c.p == ',')
			c.p++;
		rfc822_skip_cfws(&c, NULL);
	}
	if (read_number(&c, 2, &day) == 0)
		return -1;
	rfc822_skip_cfws(&c, NULL);
	if (c.p < c.end && *c.p == '-')
		c.p++; /* "1-Jan-2024" */
	if (read_word(&c, word, sizeof(word)) == 0 || (month = month_number(word)) < 0)
		return -1;
	rfc822_skip_cfws(&c, NULL);
	if (c.p < c.end && *c.p == '-')
		c.p++;
	int ydigits = read_number(&c, 4, &year);
	if (ydigits == 0)
		return -1;
	if (ydigits == 2)
		year += year < 50 ? 2000 : 1900;
	else if (ydigits == 3)
		year += 1900;
	if (year < 1900 || year > 9999 || day < 1 || day > days_in_month(year, month))
		return -1;
	rfc822_skip_cfws(&c, NULL);
	if (read_number(&c, 2, &hour) == 0)
		return -1;
	rfc822_skip_cfws(&c, NULL);
	if (c.p >= c.end || *c.p != ':')
		return -1;
	c.p++;
	rfc822_skip_cfws(&c, NULL);
	if (read_number(&c, 2, &minute) == 0)
		return -1;
	rfc822_skip_cfws(&c, NULL);
	if (c.p < c.end && *c.p == ':') {
		c.p++;
		rfc822_skip_cfws(&c, NULL);
		if (read_number(&c, 2, &second) == 0)
			return -1;
		rfc822_skip_cfws(&c, NULL);
	}
	if (hour > 23 || minute > 59 || second > 60)
		return -1;
	if (c.p < c.end && (*c.p == '+' || *c.p == '-')) {
		int sign = *c.p == '-' ? -1 : 1, hhmm;
		c.p++;
		if (read_number(&c, 4, &hhmm) != 4 || hhmm / 100 > 23 || hhmm % 100 > 59)
			return -1;
		tz = sign * ((hhmm / 100) * 60 + hhmm % 100);
	} else if (c.p < c.end && is_alpha(*c.p)) {
		read_word(&c, word, sizeof(word));
		tz = zone_minutes(word);
	}
	*time_r = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
		  (int64_t)tz * 60;
	*tz_r = tz;
	return 0;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int *y_r, int *m_r, int *d_r)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d_r = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m_r = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y_r = (int)(yoe + era * 400 + (*m_r <= 2));
}

int message_date_format(int64_t when, int32_t tz_minutes, char *out, size_t size)
{
	static const char days[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	if (tz_minutes < -(23 * 60 + 59) || tz_minutes > 23 * 60 + 59 ||
	    when < -2208988800 || when > 253402300799 + 86400) /* around 1900..9999 */
		return -1;
	int64_t local = when + (int64_t)tz_minutes * 60;
	int64_t day = local >= 0 ? local / 86400 : (local - 86399) / 86400;
	int64_t secs = local - day * 86400;
	int y, m, d;
	civil_from_days(day, &y, &m, &d);
	if (y < 1900 || y > 9999)
		return -1;
	int32_t off = tz_minutes < 0 ? -tz_minutes : tz_minutes;
	int n = snprintf(out, size, "%s, %d %s %d %02d:%02d:%02d %c%02d%02d",
			 days[((day % 7) + 7) % 7], d, months[m - 1], y, (int)(secs / 3600),
			 (int)(secs / 60 % 60), (int)(secs % 60), tz_minutes < 0 ? '-' : '+',
			 (int)(off / 60), (int)(off % 60));
	return n < 0 || (size_t)n >= size ? -1 : 0;
}
