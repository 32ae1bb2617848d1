/*
 * A streaming, validating JSON tokenizer made for query responses: the same
 * callbacks as yajl, at a fraction of yajl's cost per byte (measured in
 * bench/, checked against yajl event for event by fuzz/).
 *
 * Speed comes from three things: strings without escapes are handed out
 * straight from the input (no copy); scanning uses a byte class table; and
 * a token cut by a chunk boundary is completed by carrying only that
 * token's bytes over to the next chunk.
 */
#include "la_core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the tokenizer expects next. */
typedef enum expect {
    EXPECT_VALUE,            /* a value (top level, after ':' or ',' in an array) */
    EXPECT_VALUE_OR_CLOSE,   /* just after '[' */
    EXPECT_KEY,              /* after ',' in an object */
    EXPECT_KEY_OR_CLOSE,     /* just after '{' */
    EXPECT_COLON,
    EXPECT_COMMA_OR_CLOSE,   /* after a value inside a container */
    EXPECT_NOTHING           /* the document is complete: whitespace only */
} expect;

struct la_json {
    const la_json_callbacks *cb;
    void *ctx;
    expect state;
    la_buf stack;            /* one byte per open container: '{' or '[' */
    la_buf carry;            /* an unfinished token from the previous chunk */
    size_t resume_at;        /* a carried string: bytes already scanned */
    int resume_escaped;      /* ... and whether they held an escape */
    int resume_valid;
    la_buf scratch;          /* strings with escapes, decoded */
    int cancelled;
    int out_of_memory;
    char error[160];
};

/* byte classes for string scanning: 1 = stop (quote, backslash, control) */
static unsigned char string_stop[256];

/* Eight bytes at a time: non-zero when one of them is a quote, a backslash
 * or a control character (the classic SWAR zero-byte tests). */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static unsigned long long has_stop(unsigned long long v)
{
    unsigned long long quote = v ^ (ONES * '"'), slash = v ^ (ONES * '\\');
    return (((quote - ONES) & ~quote) | ((slash - ONES) & ~slash) | ((v - ONES * 0x20) & ~v)) & HIGHS;
}

/* The first stop byte in [p, end), or end. */
static const char *skip_plain(const char *p, const char *end)
{
    unsigned long long v, stop;
    while (end - p >= 8) {
        memcpy(&v, p, 8);
        stop = has_stop(v);
        if (stop) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* the lowest flagged byte is the first stop: the tests cannot
             * flag a byte before it falsely (borrows only run upwards) */
            return p + (__builtin_ctzll(stop) >> 3);
#else
            break;
#endif
        }
        p += 8;
    }
    while (p < end && !string_stop[(unsigned char)*p])
        p++;
    return p;
}

static void fill_tables(void)
{
    int c;
    for (c = 0; c < 0x20; c++)
        string_stop[c] = 1;
    string_stop['"'] = 1;
    string_stop['\\'] = 1;
}

/* Once per process, whichever thread (an nginx pool's, say) comes first. */
static void init_tables(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fill_tables);
}

la_json *la_json_new(const la_json_callbacks *cb, void *ctx)
{
    la_json *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    init_tables();
    j->cb = cb;
    j->ctx = ctx;
    j->state = EXPECT_VALUE;
    la_buf_init(&j->stack);
    la_buf_init(&j->carry);
    la_buf_init(&j->scratch);
    return j;
}

void la_json_free(la_json *j)
{
    if (!j)
        return;
    la_buf_free(&j->stack);
    la_buf_free(&j->carry);
    la_buf_free(&j->scratch);
    free(j);
}

void la_json_reset(la_json *j)
{
    j->state = EXPECT_VALUE;
    la_buf_clear(&j->stack);
    la_buf_clear(&j->carry);
    la_buf_clear(&j->scratch);
    j->resume_at = 0;
    j->resume_escaped = 0;
    j->resume_valid = 0;
    j->cancelled = 0;
    j->out_of_memory = 0;
    j->error[0] = '\0';
}

const char *la_json_error(const la_json *j)
{
    return j->error[0] ? j->error : "no error";
}

static int fail(la_json *j, const char *what, size_t offset)
{
    if (!j->error[0])
        snprintf(j->error, sizeof j->error, "%s (near byte %lu of the chunk)", what,
                 (unsigned long)offset);
    return -1;
}

static int no_memory(la_json *j)
{
    j->out_of_memory = 1;
    return fail(j, "out of memory", 0);
}

/* ------------------------------------------------------------ grammar */

/* After a complete value: what comes next depends on the container. */
static void value_done(la_json *j)
{
    j->state = j->stack.len ? EXPECT_COMMA_OR_CLOSE : EXPECT_NOTHING;
}

static int expects_value(const la_json *j)
{
    return j->state == EXPECT_VALUE || j->state == EXPECT_VALUE_OR_CLOSE;
}

static int emit(la_json *j, int keep_going)
{
    if (!keep_going) {
        j->cancelled = 1;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ strings */

/* Writes cp as UTF-8 at out; returns the number of bytes. */
static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(const char *p, unsigned long *out)
{
    unsigned long v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned long)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Decodes the escaped string body [p, end) into scratch; the decoded text
 * is never longer than the escaped one, so it is written in place. */
static int unescape(la_json *j, const char *p, const char *end)
{
    la_buf *b = &j->scratch;
    char *out;
    la_buf_clear(b);
    if (la_buf_append(b, p, (size_t)(end - p)) != 0)
        return -1;
    out = b->data;
    while (p < end) {
        const char *run = p;
        unsigned long cp, low;
        char c;
        p = memchr(p, '\\', (size_t)(end - p));
        if (!p)
            p = end;
        memmove(out, run, (size_t)(p - run));
        out += p - run;
        if (p == end)
            break;
        c = p[1];  /* the scanner guaranteed a character after '\\' */
        p += 2;
        switch (c) {
        case '"': case '\\': case '/': *out++ = c; break;
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 't': *out++ = '\t'; break;
        case 'u':
            if (end - p < 4 || hex4(p, &cp) != 0)
                return -2;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &low) == 0 && low >= 0xDC00 && low <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD;  /* a lone surrogate has no UTF-8 form */
            }
            /* at most 4 bytes out for 6 (or 12) in */
            out += put_utf8(out, cp);
            break;
        default:
            return -2;
        }
    }
    b->len = (size_t)(out - b->data);
    return 0;
}

/* Scans a string starting at the opening quote *p. Returns 1 when the
 * string is complete (emitted, *p past it), 0 when the chunk ended first,
 * -1 on error. */
static int scan_string(la_json *j, const char **pp, const char *end, int is_key, const char *base)
{
    const char *start = *pp + 1, *p = start;
    int escaped = 0, rc;
    if (j->resume_valid && *pp == base) {
        /* a long string carried over: do not scan its start again */
        p = start + j->resume_at;
        escaped = j->resume_escaped;
    }
    j->resume_valid = 0;
    for (;;) {
        p = skip_plain(p, end);
        if (p >= end || (*p == '\\' && p + 1 >= end)) {
            j->resume_valid = 1;
            j->resume_at = (size_t)(p - start);
            j->resume_escaped = escaped;
            return 0;
        }
        if (*p == '"')
            break;
        if (*p == '\\') {
            escaped = 1;
            p += 2;
            continue;
        }
        return fail(j, "invalid JSON: control character in a string", (size_t)(p - base));
    }
    if (escaped) {
        rc = unescape(j, start, p);
        if (rc == -2)
            return fail(j, "invalid JSON: bad escape in a string", (size_t)(p - base));
        if (rc != 0)
            return no_memory(j);
        rc = is_key ? j->cb->map_key(j->ctx, (const unsigned char *)j->scratch.data, j->scratch.len)
                    : j->cb->string(j->ctx, (const unsigned char *)j->scratch.data, j->scratch.len);
    } else {
        rc = is_key ? j->cb->map_key(j->ctx, (const unsigned char *)start, (size_t)(p - start))
                    : j->cb->string(j->ctx, (const unsigned char *)start, (size_t)(p - start));
    }
    *pp = p + 1;
    return emit(j, rc) == 0 ? 1 : -1;
}

/* ------------------------------------------------------------ numbers */

/* One or more digits (a fraction or an exponent): 1 when found, 0 when the
 * chunk ended first, -1 when there are none. */
static int digits(la_json *j, const char **pp, const char *end, int final, const char *base)
{
    const char *p = *pp;
    if (p == end && !final)
        return 0;
    if (p >= end || *p < '0' || *p > '9')
        return fail(j, "invalid JSON: bad number", (size_t)(p - base));
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    *pp = p;
    return 1;
}

/* Scans a number at *pp. Returns 1 when complete, 0 when it may continue
 * in the next chunk (and final is 0), -1 on error. */
static int scan_number(la_json *j, const char **pp, const char *end, int final, const char *base)
{
    const char *p = *pp, *start = p;
    int rc;
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else if (p == end && !final) {
        return 0;
    } else {
        return fail(j, "invalid JSON: bad number", (size_t)(p - base));
    }
    if (p < end && *p == '.') {
        p++;
        if ((rc = digits(j, &p, end, final, base)) <= 0)
            return rc;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if ((rc = digits(j, &p, end, final, base)) <= 0)
            return rc;
    }
    if (p == end && !final) {
        if (p - start > 4096)
            return fail(j, "invalid JSON: number too long", (size_t)(p - base));
        return 0;  /* more digits may follow in the next chunk */
    }
    *pp = p;
    return emit(j, j->cb->number(j->ctx, start, (size_t)(p - start))) == 0 ? 1 : -1;
}

/* true, false, null: 1 complete, 0 cut by the chunk end, -1 error */
static int scan_literal(la_json *j, const char **pp, const char *end, const char *base)
{
    static const char *const words[] = {"true", "false", "null"};
    const char *p = *pp;
    size_t avail = (size_t)(end - p), i;
    for (i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if (words[i][0] != *p)
            continue;
        if (avail < n)
            return memcmp(p, words[i], avail) == 0 ? 0 : fail(j, "invalid JSON: bad literal", (size_t)(p - base));
        if (memcmp(p, words[i], n) != 0)
            break;
        *pp = p + n;
        if (i == 2)
            return emit(j, j->cb->null(j->ctx)) == 0 ? 1 : -1;
        return emit(j, j->cb->boolean(j->ctx, i == 0)) == 0 ? 1 : -1;
    }
    return fail(j, "invalid JSON: unexpected character", (size_t)(p - base));
}

/* ------------------------------------------------------------ the loop */

/* Tokenizes [p, end). Returns 0 with *rest pointing at an unfinished token
 * (or end), or -1. */
static int run(la_json *j, const char *p, const char *end, int final, const char **rest)
{
    const char *base = p;
    int rc;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            p++;
            continue;
        }
        switch (j->state) {
        case EXPECT_NOTHING:
            return fail(j, "invalid JSON: trailing garbage", (size_t)(p - base));
        case EXPECT_COLON:
            if (c != ':')
                return fail(j, "invalid JSON: expected ':'", (size_t)(p - base));
            j->state = EXPECT_VALUE;
            p++;
            continue;
        case EXPECT_COMMA_OR_CLOSE:
            if (c == ',') {
                j->state = j->stack.data[j->stack.len - 1] == '{' ? EXPECT_KEY : EXPECT_VALUE;
                p++;
                continue;
            }
            break;  /* a closing bracket, handled below */
        case EXPECT_KEY:
        case EXPECT_KEY_OR_CLOSE:
            if (c == '"') {
                rc = scan_string(j, &p, end, 1, base);
                if (rc <= 0) {
                    if (rc < 0)
                        return -1;
                    *rest = p;
                    return 0;
                }
                j->state = EXPECT_COLON;
                continue;
            }
            if (c == '}' && j->state == EXPECT_KEY_OR_CLOSE)
                break;
            return fail(j, "invalid JSON: expected a key", (size_t)(p - base));
        default:
            break;
        }

        /* closing brackets */
        if (c == '}' || c == ']') {
            char open = c == '}' ? '{' : '[';
            if (j->stack.len == 0 || j->stack.data[j->stack.len - 1] != open ||
                j->state == EXPECT_VALUE || j->state == EXPECT_KEY)
                return fail(j, "invalid JSON: unexpected closing bracket", (size_t)(p - base));
            if (j->state == EXPECT_VALUE_OR_CLOSE && c != ']')
                return fail(j, "invalid JSON: unexpected closing bracket", (size_t)(p - base));
            j->stack.len--;
            p++;
            if (emit(j, c == '}' ? j->cb->end_map(j->ctx) : j->cb->end_array(j->ctx)) != 0)
                return -1;
            value_done(j);
            continue;
        }
        if (!expects_value(j))
            return fail(j, "invalid JSON: expected ',' or a closing bracket", (size_t)(p - base));

        /* values */
        if (c == '"') {
            rc = scan_string(j, &p, end, 0, base);
        } else if (c == '{' || c == '[') {
            if (la_buf_putc(&j->stack, (char)c) != 0)
                return no_memory(j);
            p++;
            if (emit(j, c == '{' ? j->cb->start_map(j->ctx) : j->cb->start_array(j->ctx)) != 0)
                return -1;
            j->state = c == '{' ? EXPECT_KEY_OR_CLOSE : EXPECT_VALUE_OR_CLOSE;
            continue;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            rc = scan_number(j, &p, end, final, base);
        } else {
            rc = scan_literal(j, &p, end, base);
        }
        if (rc < 0)
            return -1;
        if (rc == 0) {
            *rest = p;
            return 0;
        }
        value_done(j);
    }
    *rest = end;
    return 0;
}

int la_json_feed(la_json *j, const char *data, size_t len)
{
    const char *rest;
    if (j->error[0] || j->cancelled)
        return -1;
    if (j->carry.len) {
        /* finish the token the last chunk cut: tokenize carry + this chunk,
         * keeping what is still unfinished at the front of carry */
        size_t consumed;
        if (la_buf_append(&j->carry, data, len) != 0)
            return no_memory(j);
        if (run(j, j->carry.data, j->carry.data + j->carry.len, 0, &rest) != 0)
            return -1;
        consumed = (size_t)(rest - j->carry.data);
        if (consumed) {
            memmove(j->carry.data, rest, j->carry.len - consumed);
            j->carry.len -= consumed;
        }
        return 0;
    }
    j->resume_valid = 0;
    if (run(j, data, data + len, 0, &rest) != 0)
        return -1;
    if (rest < data + len && la_buf_append(&j->carry, rest, (size_t)(data + len - rest)) != 0)
        return no_memory(j);
    return 0;
}

int la_json_finish(la_json *j)
{
    const char *rest;
    la_buf tail;
    if (j->error[0] || j->cancelled)
        return -1;
    if (j->carry.len) {
        tail = j->carry;
        la_buf_init(&j->carry);
        if (run(j, tail.data, tail.data + tail.len, 1, &rest) != 0 || rest != tail.data + tail.len) {
            la_buf_free(&tail);
            return fail(j, "the response ended before its JSON was complete", 0);
        }
        la_buf_free(&tail);
    }
    if (j->state != EXPECT_NOTHING)
        return fail(j, "the response ended before its JSON was complete", 0);
    return 0;
}

int la_json_cancelled(const la_json *j)
{
    return j->cancelled;
}

int la_json_out_of_memory(const la_json *j)
{
    return j->out_of_memory;
}
