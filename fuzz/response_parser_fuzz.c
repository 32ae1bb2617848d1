/*
 * libFuzzer target over the streaming response parser (src/response_parser.c
 * and what it calls: the tokenizer, cell conversion, buffers).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -o build/fuzz_response_parser \
 *     fuzz/response_parser_fuzz.c src/response_parser.c src/json_tokenizer.c \
 *     src/cell.c src/buffer.c -lm
 *
 * Input layout: the first 4 bytes seed a small PRNG (chunk sizes, early
 * stops); the rest is the response body. Each chunk is copied into its own
 * exact-size heap block and freed after la_parser_feed, so ASan sees a read
 * past a chunk's end or a pointer kept into an earlier chunk. The sink copies
 * every string and cell it is handed into an exact-size heap block (so ASan
 * sees a length that runs past the data) and checks the event grammar:
 *
 *   (table_begin table_name? column* (row_begin cell* row_end)* table_end | member)*
 *
 * with column indexes counting up from 0 per table, row_begin's ncolumns the
 * number of columns seen so far, cell indexes counting up from 0 per row,
 * row_end's ncells the cells seen, strings non-NULL when their length is not
 * 0, members' JSON text itself valid JSON, no event after a sink asked to
 * stop, and statuses that match what the sink did. Any violation aborts.
 */
#include "../src/la_core.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "response_parser_fuzz: invariant failed: %s (%s:%d)\n", \
                    #cond, __FILE__, __LINE__);                                  \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* ------------------------------------------------------------ PRNG */

static uint32_t rng;
static uint32_t next_random(void)
{
    /* xorshift32; never seeded with 0 */
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* ------------------------------------------------------------ sink */

typedef struct state {
    size_t doc_len;          /* bound for lengths and counts */
    int in_table, in_row;
    size_t columns;          /* columns seen in the current table */
    size_t row_columns;      /* row_begin's ncolumns */
    size_t cells;            /* cells seen in the current row */
    size_t tables_begun, tables_ended, rows, members;
    int stop_every;          /* 0: never stop; else stop with 1/stop_every per event */
    int stopped;             /* a callback returned LA_SINK_STOP */
    unsigned long sum;       /* keeps the copies observable */
} state;

/* Copy len bytes into a block of exactly that size: ASan reports a read
 * past the end of what the parser handed out, or of freed memory. */
static void touch(state *s, const char *data, size_t len)
{
    char *copy;
    size_t i;
    if (len == 0)
        return;
    CHECK(data != NULL);
    copy = malloc(len);
    CHECK(copy != NULL);
    memcpy(copy, data, len);
    for (i = 0; i < len; i += 61)
        s->sum += (unsigned char)copy[i];
    s->sum += (unsigned char)copy[len - 1];
    free(copy);
}

/* Every event goes through here first. Returns what the callback returns. */
static int event(state *s)
{
    CHECK(!s->stopped);   /* no event after the sink asked to stop */
    if (s->stop_every && next_random() % (uint32_t)s->stop_every == 0) {
        s->stopped = 1;
        return LA_SINK_STOP;
    }
    return 0;
}

/* Output of la_buf_append_json_string is at most 6 bytes per input byte
 * (\u00XX); the tokenizer may write 3 bytes (U+FFFD) for one bad byte. */
static size_t text_bound(const state *s)
{
    return 6 * s->doc_len + 16;
}

static int on_table_begin(void *ud)
{
    state *s = ud;
    CHECK(!s->in_table && !s->in_row);
    s->in_table = 1;
    s->columns = 0;
    s->tables_begun++;
    CHECK(s->tables_begun <= s->doc_len);
    return event(s);
}

static int on_table_name(void *ud, const char *name, size_t len)
{
    state *s = ud;
    CHECK(s->in_table && !s->in_row);
    CHECK(len <= text_bound(s));
    CHECK(len == 0 || name != NULL);
    touch(s, name, len);
    return event(s);
}

static int on_column(void *ud, size_t index, const char *name, size_t name_len,
                     const char *type, size_t type_len)
{
    state *s = ud;
    CHECK(s->in_table && !s->in_row);
    CHECK(index == s->columns);
    CHECK(index < s->doc_len);
    CHECK(name != NULL && type != NULL);   /* "" when absent */
    CHECK(name_len <= text_bound(s) && type_len <= text_bound(s));
    touch(s, name, name_len);
    touch(s, type, type_len);
    s->columns++;
    return event(s);
}

static int on_row_begin(void *ud, size_t ncolumns)
{
    state *s = ud;
    CHECK(s->in_table && !s->in_row);
    CHECK(ncolumns == s->columns);
    s->in_row = 1;
    s->row_columns = ncolumns;
    s->cells = 0;
    s->rows++;
    CHECK(s->rows <= s->doc_len);
    return event(s);
}

static int on_cell(void *ud, size_t index, const la_cell *cell)
{
    state *s = ud;
    CHECK(s->in_table && s->in_row);
    CHECK(cell != NULL);
    CHECK(index == s->cells);
    CHECK(index < s->doc_len);
    switch (cell->kind) {
    case LA_CELL_NULL:
        break;
    case LA_CELL_BOOL:
        CHECK(cell->boolean == 0 || cell->boolean == 1);
        break;
    case LA_CELL_INTEGER:
        s->sum += (unsigned long)cell->integer;
        break;
    case LA_CELL_REAL:
        s->sum += cell->real == cell->real ? 1u : 2u;
        break;
    case LA_CELL_STRING:
        CHECK(cell->len <= text_bound(s));
        CHECK(cell->len == 0 || cell->str != NULL);
        touch(s, cell->str, cell->len);
        break;
    default:
        CHECK(!"unknown cell kind");
    }
    s->cells++;
    return event(s);
}

static int on_row_end(void *ud, size_t ncells)
{
    state *s = ud;
    CHECK(s->in_table && s->in_row);
    CHECK(ncells == s->cells);
    s->in_row = 0;
    return event(s);
}

static int on_table_end(void *ud)
{
    state *s = ud;
    CHECK(s->in_table && !s->in_row);
    s->in_table = 0;
    s->tables_ended++;
    return event(s);
}

/* A member's text must itself be one complete JSON value. */
static int nop(void *c) { (void)c; return 1; }
static int nop_bool(void *c, int v) { (void)c; (void)v; return 1; }
static int nop_num(void *c, const char *t, size_t n) { (void)c; (void)t; (void)n; return 1; }
static int nop_str(void *c, const unsigned char *t, size_t n) { (void)c; (void)t; (void)n; return 1; }
static const la_json_callbacks nop_events = {
    nop, nop_bool, nop_num, nop_str, nop, nop_str, nop, nop, nop,
};

static int on_member(void *ud, const char *key, size_t key_len, const char *json, size_t json_len)
{
    state *s = ud;
    la_json *j;
    CHECK(!s->in_table && !s->in_row);
    CHECK(key_len == 0 || key != NULL);
    CHECK(key_len <= text_bound(s));
    CHECK(json != NULL && json_len > 0 && json_len <= text_bound(s));
    CHECK(!(key_len == 6 && memcmp(key, "tables", 6) == 0));   /* that one is parsed */
    touch(s, key, key_len);
    touch(s, json, json_len);
    j = la_json_new(&nop_events, NULL);
    CHECK(j != NULL);
    {
        /* the text, in its own block, parsed in one go */
        char *copy = malloc(json_len);
        CHECK(copy != NULL);
        memcpy(copy, json, json_len);
        CHECK(la_json_feed(j, copy, json_len) == 0);
        CHECK(la_json_finish(j) == 0);
        free(copy);
    }
    la_json_free(j);
    s->members++;
    return event(s);
}

static const la_result_sink sink = {
    on_table_begin, on_table_name, on_column, on_row_begin,
    on_cell, on_row_end, on_table_end, on_member,
};

/* ------------------------------------------------------------ driver */

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len)
{
    state s;
    la_parser *p;
    la_parse_status st = LA_PARSE_OK;
    const char *doc, *err;
    size_t doc_len, at = 0, max_chunk;
    uint32_t seed = 0x9e3779b9u;
    size_t i, head = len < 4 ? len : 4;

    for (i = 0; i < head; i++)
        seed = seed * 31u + data[i] + 1u;
    rng = seed ? seed : 1u;
    doc = (const char *)data + head;
    doc_len = len - head;

    memset(&s, 0, sizeof s);
    s.doc_len = doc_len;
    /* one input in four stops early, at a random event */
    if (next_random() % 4 == 0)
        s.stop_every = 1 + (int)(next_random() % 64);
    /* chunk sizes: mostly small, sometimes large */
    max_chunk = next_random() % 2 ? 1 + next_random() % 16 : 1 + next_random() % 4096;

    p = la_parser_new(&sink, &s);
    CHECK(p != NULL);
    while (st == LA_PARSE_OK && at < doc_len) {
        size_t n = 1 + next_random() % max_chunk;
        uint32_t r = next_random() % 16;
        char *chunk;
        if (n > doc_len - at)
            n = doc_len - at;
        if (r == 0)
            n = doc_len - at;     /* sometimes the rest at once */
        else if (r == 1)
            n = 0;                /* and now and then an empty chunk */
        chunk = malloc(n ? n : 1);
        CHECK(chunk != NULL);
        memcpy(chunk, doc + at, n);
        st = la_parser_feed(p, chunk, n);
        free(chunk);
        at += n;
        CHECK(st == LA_PARSE_OK || st == LA_PARSE_STOPPED || st == LA_PARSE_ERROR);
        CHECK((st == LA_PARSE_STOPPED) == (s.stopped != 0));
    }
    if (st == LA_PARSE_OK) {
        st = la_parser_finish(p);
        CHECK((st == LA_PARSE_STOPPED) == (s.stopped != 0));
        if (st == LA_PARSE_OK) {
            /* a complete document: everything opened was closed */
            CHECK(!s.in_table && !s.in_row);
            CHECK(s.tables_begun == s.tables_ended);
        }
    }
    err = la_parser_error(p);
    CHECK(err != NULL);
    CHECK(strlen(err) < 1024);
    if (st == LA_PARSE_ERROR)
        CHECK(strcmp(err, "no error") != 0);
    /* the status sticks: feeding after an error or a stop changes nothing */
    if (st == LA_PARSE_ERROR && next_random() % 4 == 0) {
        CHECK(la_parser_feed(p, "{}", 2) == LA_PARSE_ERROR);
        CHECK(la_parser_finish(p) == LA_PARSE_ERROR);
    }
    la_parser_free(p);
    return 0;
}
