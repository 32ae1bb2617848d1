/*
 * Typed conversion of result cells by column type. Numbers arrive as the
 * parser's raw text, so int/long are parsed exactly over the whole 64-bit
 * range instead of being rounded through a double.
 */
#include "la_core.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

la_type la_type_from_name(const char *name, size_t len)
{
    static const struct { const char *name; la_type type; } names[] = {
        {"string", LA_TYPE_STRING},   {"long", LA_TYPE_LONG},
        {"datetime", LA_TYPE_DATETIME}, {"real", LA_TYPE_REAL},
        {"int", LA_TYPE_INT},         {"bool", LA_TYPE_BOOL},
        {"dynamic", LA_TYPE_DYNAMIC}, {"guid", LA_TYPE_GUID},
        {"timespan", LA_TYPE_TIMESPAN}, {"decimal", LA_TYPE_DECIMAL},
        /* aliases Kusto also uses */
        {"double", LA_TYPE_REAL},     {"boolean", LA_TYPE_BOOL},
        {"date", LA_TYPE_DATETIME},   {"time", LA_TYPE_TIMESPAN},
        {"uniqueid", LA_TYPE_GUID},
    };
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name_is(name, len, names[i].name))
            return names[i].type;
    return LA_TYPE_UNKNOWN;
}

#define NOMEM (-2)

int la_parse_int64(const char *s, size_t len, long long *out)
{
    /* the magnitude of LLONG_MIN, which has no positive twin */
    const unsigned long long limit_neg = 9223372036854775808ULL;
    const unsigned long long limit_pos = 9223372036854775807ULL;
    unsigned long long v = 0;
    int negative = 0;
    size_t i = 0;
    if (len && (s[0] == '-' || s[0] == '+')) {
        negative = s[0] == '-';
        i = 1;
    }
    if (i == len)
        return -1;
    for (; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (limit_neg - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (negative) {
        if (v > limit_neg)
            return -1;
        *out = v == limit_neg ? (-9223372036854775807LL - 1) : -(long long)v;
    } else {
        if (v > limit_pos)
            return -1;
        *out = (long long)v;
    }
    return 0;
}

/* The "C" locale, for strtod: the process's LC_NUMERIC (a host's
 * setlocale(LC_ALL, "de_DE.UTF-8"), say) must not make "1.5" unreadable.
 * glibc and musl hand the C locale over without allocating. */
static locale_t c_locale = (locale_t)0;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* strtod over a length-delimited string, in the C locale whatever the
 * process's: 0 when all of it is a number, -1 when it is not one, NOMEM
 * when memory ran out (a long text is copied). */
static int parse_double(const char *s, size_t len, double *out)
{
    char small[64], *copy = small, *end;
    locale_t previous = (locale_t)0;
    int ok;
    if (len == 0)
        return -1;
    pthread_once(&c_locale_once, make_c_locale);
    if (c_locale == (locale_t)0)
        return NOMEM;
    if (len >= sizeof small) {
        copy = malloc(len + 1);
        if (!copy)
            return NOMEM;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    previous = uselocale(c_locale);
    *out = strtod(copy, &end);
    uselocale(previous);
    ok = end == copy + len;
    if (copy != small)
        free(copy);
    return ok ? 0 : -1;
}

static void set_string(la_cell *out, const char *s, size_t len)
{
    out->kind = LA_CELL_STRING;
    out->str = s;
    out->len = len;
}

static void set_real(la_cell *out, double d)
{
    out->kind = LA_CELL_REAL;
    out->real = d;
}

static void set_integer(la_cell *out, long long v)
{
    out->kind = LA_CELL_INTEGER;
    out->integer = v;
}

static void set_bool(la_cell *out, int b)
{
    out->kind = LA_CELL_BOOL;
    out->boolean = b != 0;
}

/* An integer when the text is one that fits in int64, or a float whose value
 * is integral and in range ("1e3"); otherwise a float. Returns -1 when the
 * text is not a number at all, NOMEM when memory ran out. */
static int number_as_integer(const char *s, size_t len, la_cell *out)
{
    long long v;
    double d;
    size_t i;
    int digits_only = len > 0, rc;
    if (la_parse_int64(s, len, &v) == 0) {
        set_integer(out, v);
        return 0;
    }
    rc = parse_double(s, len, &d);
    if (rc != 0)
        return rc;
    for (i = (len && (s[0] == '-' || s[0] == '+')); i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            digits_only = 0;
    if (digits_only) {
        /* an integer beyond 64 bits: the nearest float, never a clamped
         * integer (-9223372036854775809 must not read as the minimum) */
        set_real(out, d);
        return 0;
    }
    /* 2^63 is exactly representable; anything below it fits */
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
        set_integer(out, (long long)d);
    else
        set_real(out, d);
    return 0;
}

/* The spellings the service uses for non-finite reals. */
static int special_real(const char *s, size_t len, double *out)
{
    if (name_is(s, len, "NaN") || name_is(s, len, "-NaN")) {
        *out = NAN;
        return 0;
    }
    if (name_is(s, len, "Infinity") || name_is(s, len, "+Infinity") || name_is(s, len, "inf")) {
        *out = INFINITY;
        return 0;
    }
    if (name_is(s, len, "-Infinity") || name_is(s, len, "-inf")) {
        *out = -INFINITY;
        return 0;
    }
    return -1;
}

/* The outcome of a conversion: text that is not what its column says stays
 * a string; running out of memory is never taken for that. */
static int converted(int rc, la_cell *out, const char *s, size_t len)
{
    if (rc == NOMEM)
        return -1;
    if (rc != 0)
        set_string(out, s, len);
    return 0;
}

int la_cell_from_number(la_type type, const char *raw, size_t len, la_cell *out)
{
    double d;
    int rc;
    switch (type) {
    case LA_TYPE_BOOL:
        rc = parse_double(raw, len, &d);
        if (rc == 0)
            set_bool(out, d != 0);
        return converted(rc, out, raw, len);
    case LA_TYPE_INT:
    case LA_TYPE_LONG:
    case LA_TYPE_UNKNOWN:
        return converted(number_as_integer(raw, len, out), out, raw, len);
    case LA_TYPE_REAL:
        rc = parse_double(raw, len, &d);
        if (rc == 0)
            set_real(out, d);
        return converted(rc, out, raw, len);
    default:
        /* decimal, datetime, timespan, guid, string, dynamic: as sent */
        set_string(out, raw, len);
        return 0;
    }
}

int la_cell_from_string(la_type type, const char *s, size_t len, la_cell *out)
{
    double d;
    int rc;
    switch (type) {
    case LA_TYPE_BOOL:
        if (name_is(s, len, "true") || name_is(s, len, "1"))
            set_bool(out, 1);
        else if (name_is(s, len, "false") || name_is(s, len, "0"))
            set_bool(out, 0);
        else
            set_string(out, s, len);
        return 0;
    case LA_TYPE_INT:
    case LA_TYPE_LONG:
        return converted(number_as_integer(s, len, out), out, s, len);
    case LA_TYPE_REAL:
        rc = special_real(s, len, &d);
        if (rc != 0)
            rc = parse_double(s, len, &d);
        if (rc == 0)
            set_real(out, d);
        return converted(rc, out, s, len);
    default:
        set_string(out, s, len);
        return 0;
    }
}

void la_cell_from_bool(la_type type, int value, la_cell *out)
{
    switch (type) {
    case LA_TYPE_BOOL:
    case LA_TYPE_INT:
    case LA_TYPE_LONG:
    case LA_TYPE_REAL:
    case LA_TYPE_UNKNOWN:
        set_bool(out, value);
        return;
    default:
        /* text types keep the JSON spelling */
        if (value)
            set_string(out, "true", 4);
        else
            set_string(out, "false", 5);
        return;
    }
}

void la_cell_from_json_text(const char *json, size_t len, la_cell *out)
{
    set_string(out, json, len);
}

/* ------------------------------------------------------------ datetimes */

#define TICKS_PER_SECOND 10000000LL
#define TICKS_PER_DAY (86400LL * TICKS_PER_SECOND)
/* days from 0001-01-01 to 1970-01-01 */
#define DAYS_TO_UNIX_EPOCH 719162LL

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); m 1-12, d 1-31. */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    long long era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse: the date of days since 1970-01-01. */
static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
    long long era, doe, yoe, doy, mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(long long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* n digits at s as a number, or -1 when one is not a digit. */
static long digits(const char *s, size_t n)
{
    long v = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int la_datetime_parse(const char *s, size_t len, long long *ticks)
{
    static const unsigned char month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    long year, month, day, hour, minute, second, fraction = 0;
    size_t nfrac = 0;
    /* YYYY-MM-DDTHH:MM:SS is 19 bytes, then [.F{1,7}] and Z */
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[len - 1] != 'Z')
        return -1;
    year = digits(s, 4);
    month = digits(s + 5, 2);
    day = digits(s + 8, 2);
    hour = digits(s + 11, 2);
    minute = digits(s + 14, 2);
    second = digits(s + 17, 2);
    if (len > 20) {
        nfrac = len - 21;
        if (s[19] != '.' || nfrac < 1 || nfrac > 7 || (fraction = digits(s + 20, nfrac)) < 0)
            return -1;
        for (; nfrac < 7; nfrac++)
            fraction *= 10;
    }
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
        minute < 0 || minute > 59 || second < 0 || second > 59)
        return -1;
    if (day > month_days[month - 1] + (month == 2 && is_leap(year)))
        return -1;
    *ticks = (days_from_civil(year, (unsigned)month, (unsigned)day) + DAYS_TO_UNIX_EPOCH) *
                 TICKS_PER_DAY +
             ((hour * 60 + minute) * 60 + second) * TICKS_PER_SECOND + fraction;
    return 0;
}

int la_datetime_format(long long ticks, char *out, size_t size)
{
    long long days, rest, year;
    unsigned month, day;
    if (ticks < 0 || ticks > LA_TICKS_MAX || size < LA_DATETIME_TEXT_SIZE)
        return -1;
    days = ticks / TICKS_PER_DAY;
    rest = ticks % TICKS_PER_DAY;
    civil_from_days(days - DAYS_TO_UNIX_EPOCH, &year, &month, &day);
    snprintf(out, size, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%07lldZ", year, month, day,
             rest / (3600 * TICKS_PER_SECOND), rest / (60 * TICKS_PER_SECOND) % 60,
             rest / TICKS_PER_SECOND % 60, rest % TICKS_PER_SECOND);
    return 0;
}

/* Floor division: before 1970 too, a time rounds down to its millisecond. */
static long long floor_div(long long a, long long b)
{
    long long q = a / b;
    return q - ((a % b != 0) && ((a < 0) != (b < 0)));
}

double la_ticks_to_epoch(long long ticks)
{
    long long since = ticks - LA_TICKS_UNIX_EPOCH;
    long long seconds = floor_div(since, TICKS_PER_SECOND);
    /* whole seconds and the fraction apart: one rounding, not two */
    return (double)seconds + (double)(since - seconds * TICKS_PER_SECOND) / 1e7;
}

long long la_ticks_to_epoch_ms(long long ticks)
{
    return floor_div(ticks - LA_TICKS_UNIX_EPOCH, TICKS_PER_SECOND / 1000);
}

void la_cell_from_datetime(la_datetime_mode mode, const char *s, size_t len, la_cell *out)
{
    long long ticks;
    if (mode == LA_DATETIME_STRING || la_datetime_parse(s, len, &ticks) != 0) {
        set_string(out, s, len);
        return;
    }
    switch (mode) {
    case LA_DATETIME_EPOCH: set_real(out, la_ticks_to_epoch(ticks)); break;
    case LA_DATETIME_EPOCH_MS: set_integer(out, la_ticks_to_epoch_ms(ticks)); break;
    default: set_integer(out, ticks); break;
    }
}
