/*
 * Differential check of src/json_tokenizer.c against yajl: the same input,
 * split into chunks at random places, must give the same verdict (valid or
 * not) and, when valid, the same events in the same order.
 *
 * Built two ways:
 *   - with -DSTANDALONE: `tokenizer_diff [-n ROUNDS] FILE...` checks each
 *     file and ROUNDS deterministic mutations of it (the specs run this);
 *   - with clang -fsanitize=fuzzer: a libFuzzer target (make fuzz).
 * Inputs where the two are allowed to differ are skipped: surrogate
 * escapes (yajl passes lone ones through, we write U+FFFD), \v and \f
 * (yajl takes them as whitespace), numbers over 4096 characters (we refuse);
 * and a complete value followed by an unfinished token at the very end,
 * which yajl accepts and we refuse.
 */
#include "../src/la_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

static void log_event(la_buf *log, char tag, const char *text, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof head, "%c%lu:", tag, (unsigned long)len);
    la_buf_append(log, head, (size_t)n);
    if (len)
        la_buf_append(log, text, len);
    la_buf_putc(log, '\n');
}

static int ev_null(void *c) { log_event(c, 'n', NULL, 0); return 1; }
static int ev_bool(void *c, int b) { log_event(c, b ? 't' : 'f', NULL, 0); return 1; }
static int ev_number(void *c, const char *s, size_t n) { log_event(c, '#', s, n); return 1; }
static int ev_string(void *c, const unsigned char *s, size_t n) { log_event(c, 's', (const char *)s, n); return 1; }
static int ev_key(void *c, const unsigned char *s, size_t n) { log_event(c, 'k', (const char *)s, n); return 1; }
static int ev_start_map(void *c) { log_event(c, '{', NULL, 0); return 1; }
static int ev_end_map(void *c) { log_event(c, '}', NULL, 0); return 1; }
static int ev_start_array(void *c) { log_event(c, '[', NULL, 0); return 1; }
static int ev_end_array(void *c) { log_event(c, ']', NULL, 0); return 1; }

static const yajl_callbacks yajl_events = {
    ev_null, ev_bool, NULL, NULL, ev_number, ev_string,
    ev_start_map, ev_key, ev_end_map, ev_start_array, ev_end_array,
};
static const la_json_callbacks our_events = {
    ev_null, ev_bool, ev_number, ev_string, ev_start_map, ev_key, ev_end_map,
    ev_start_array, ev_end_array,
};

static int skipped(const unsigned char *data, size_t len)
{
    size_t i, digits = 0;
    for (i = 0; i < len; i++) {
        if (data[i] == '\v' || data[i] == '\f')
            return 1;
        if (data[i] == '\\' && i + 3 < len && data[i + 1] == 'u' &&
            (data[i + 2] == 'd' || data[i + 2] == 'D') && strchr("89abcdefABCDEF", data[i + 3]))
            return 1;
        digits = (data[i] >= '0' && data[i] <= '9') ? digits + 1 : 0;
        if (digits > 4000)
            return 1;
    }
    return 0;
}

static unsigned long long rng_state;
static unsigned next_random(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33);
}

/* Returns 0 when both agree. */
static int compare(const unsigned char *data, size_t len, unsigned seed)
{
    la_buf theirs, ours;
    yajl_handle y;
    la_json *j;
    int y_ok, o_ok, differ, same_events;
    size_t at = 0;

    if (skipped(data, len))
        return 0;
    la_buf_init(&theirs);
    la_buf_init(&ours);

    y = yajl_alloc(&yajl_events, NULL, &theirs);
    yajl_config(y, yajl_dont_validate_strings, 1);
    y_ok = yajl_parse(y, data, len) == yajl_status_ok && yajl_complete_parse(y) == yajl_status_ok;
    yajl_free(y);

    j = la_json_new(&our_events, &ours);
    rng_state = seed;
    o_ok = 1;
    while (o_ok && at < len) {
        size_t n = 1 + next_random() % (len - at < 64 ? len - at : 64);
        if (next_random() % 4 == 0)
            n = len - at;  /* sometimes the rest at once */
        o_ok = la_json_feed(j, (const char *)data + at, n) == 0;
        at += n;
    }
    if (o_ok)
        o_ok = la_json_finish(j) == 0;
    la_json_free(j);

    same_events = theirs.len == ours.len && (!ours.len || memcmp(theirs.data, ours.data, ours.len) == 0);
    /* yajl accepts a complete value followed by an unfinished token at the
     * very end ("0 \""); we refuse it: not a difference worth reporting */
    differ = (y_ok != o_ok && !(y_ok && same_events)) || (y_ok && o_ok && !same_events);
    if (differ) {
        fprintf(stderr, "tokenizer_diff: yajl says %s, we say %s for %lu bytes (seed %u)\n",
                y_ok ? "valid" : "invalid", o_ok ? "valid" : "invalid", (unsigned long)len, seed);
        fprintf(stderr, "--- input\n%.*s\n--- yajl\n%.*s--- ours\n%.*s", (int)len, (const char *)data,
                (int)(theirs.len < 2000 ? theirs.len : 2000), theirs.data ? theirs.data : "",
                (int)(ours.len < 2000 ? ours.len : 2000), ours.data ? ours.data : "");
    }
    la_buf_free(&theirs);
    la_buf_free(&ours);
    return differ;
}

#ifdef STANDALONE

#include "standalone.h"

/* A deterministic mutation: flip, insert, delete or cut a few bytes. */
static size_t mutate(unsigned char *out, const unsigned char *in, size_t len, unsigned seed)
{
    static const char alphabet[] = "{}[]\":,.-+eE0123456789tfnrul\\ \n\"abc";
    size_t n = len, edits = 1 + seed % 4, k;
    memcpy(out, in, len);
    rng_state = seed * 2654435761ULL + 1;
    for (k = 0; k < edits && n; k++) {
        size_t pos = next_random() % n;
        switch (next_random() % 4) {
        case 0: out[pos] = (unsigned char)alphabet[next_random() % (sizeof alphabet - 1)]; break;
        case 1: memmove(out + pos + 1, out + pos, n - pos); out[pos] = (unsigned char)alphabet[next_random() % (sizeof alphabet - 1)]; n++; break;
        case 2: memmove(out + pos, out + pos + 1, n - pos - 1); n--; break;
        default: n = pos; break;
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    int i = 1, failures = 0;
    unsigned rounds = 0, r, checked = 0;
    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        rounds = (unsigned)strtoul(argv[2], NULL, 10);
        i = 3;
    }
    for (; i < argc; i++) {
        size_t len, mlen;
        unsigned char *data = read_all(argv[i], &len), *mutant;
        if (!data) {
            fprintf(stderr, "tokenizer_diff: cannot read %s\n", argv[i]);
            return 2;
        }
        mutant = malloc(len + 8);
        failures += compare(data, len, 1);
        checked++;
        for (r = 0; r < rounds && mutant; r++) {
            mlen = mutate(mutant, data, len, r + 7);
            failures += compare(mutant, mlen, r);
            checked++;
        }
        free(mutant);
        free(data);
    }
    printf("tokenizer_diff: %u inputs, %d differences\n", checked, failures);
    return failures ? 1 : 0;
}

#else

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len)
{
    unsigned seed = len ? data[0] * 131u + (unsigned)len : 1u;
    if (compare(data, len, seed) != 0)
        abort();
    return 0;
}

#endif
