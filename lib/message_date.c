#include "lib/message_date.h"

#include <stdbool.h>
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
