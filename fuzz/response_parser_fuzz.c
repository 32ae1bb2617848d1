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
 *
 * Then the same body goes through the event tape (src/event_tape.c, with
 * its string cache) in other random chunks, replayed after every chunk, the
 * replaying sink pausing at random events (LA_SINK_PAUSE: the next replay
 * gives that event again, as a decoder taking rows in batches does): the
 * replayed events, string slots resolved, must be exactly the direct
 * parse's, event for event (both are written out canonically and compared).
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
    la_buf *trace;           /* every event written out, for the tape check */
} state;

/* Canonical trace of an event: a tag, numbers and length-prefixed bytes. */
static void trace(state *s, char tag, size_t a, const char *text, size_t len)
{
    if (!s->trace)
        return;
    CHECK(la_buf_putc(s->trace, tag) == 0);
    CHECK(la_buf_append(s->trace, (const char *)&a, sizeof a) == 0);
    CHECK(la_buf_append(s->trace, (const char *)&len, sizeof len) == 0);
    if (len)
        CHECK(la_buf_append(s->trace, text, len) == 0);
}

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
    trace(s, 'T', 0, NULL, 0);
    return event(s);
}

static int on_table_name(void *ud, const char *name, size_t len)
{
    state *s = ud;
    CHECK(s->in_table && !s->in_row);
    CHECK(len <= text_bound(s));
    CHECK(len == 0 || name != NULL);
    touch(s, name, len);
    trace(s, 'N', 0, name, len);
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
    trace(s, 'C', index, name, name_len);
    trace(s, 'c', index, type, type_len);
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
    trace(s, 'R', ncolumns, NULL, 0);
    return event(s);
}

static int on_cell(void *ud, size_t index, const la_cell *cell)
{
    state *s = ud;
    CHECK(s->in_table && s->in_row);
    CHECK(cell != NULL);
    CHECK(index == s->cells);
    CHECK(index < s->doc_len);
    CHECK(cell->slot == 0);  /* slots are resolved before this sink */
    switch (cell->kind) {
    case LA_CELL_NULL: trace(s, '0', index, NULL, 0); break;
    case LA_CELL_BOOL: trace(s, 'b', index, cell->boolean ? "1" : "0", 1); break;
    case LA_CELL_INTEGER: trace(s, 'i', index, (const char *)&cell->integer, sizeof cell->integer); break;
    case LA_CELL_REAL: trace(s, 'r', index, (const char *)&cell->real, sizeof cell->real); break;
    case LA_CELL_STRING: trace(s, 's', index, cell->str, cell->len); break;
    default: break;
    }
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
    trace(s, 'E', ncells, NULL, 0);
    return event(s);
}

static int on_table_end(void *ud)
{
    state *s = ud;
    CHECK(s->in_table && !s->in_row);
    s->in_table = 0;
    s->tables_ended++;
    trace(s, 'X', 0, NULL, 0);
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
    trace(s, 'K', 0, key, key_len);
    trace(s, 'J', 0, json, json_len);
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

/* ------------------------------------------------------------ tape */

/* Between the tape's replay and the checking sink: string cells that name
 * a slot are resolved here, as the binding resolves them into Lua strings
 * (a copy kept per slot, forgotten at each table). */
#define SLOTS (LA_STRING_CACHE_COLUMNS * LA_STRING_CACHE_PER_COLUMN)

typedef struct resolver {
    state *checked;
    la_buf kept[SLOTS + 1];
    int seen[SLOTS + 1];
    int paused;          /* the last event was refused: take it this time */
} resolver;

/* Refuses one event in eight (never the same one twice running). */
static int pause_here(resolver *r)
{
    if (r->paused) {
        r->paused = 0;
        return 0;
    }
    r->paused = next_random() % 8 == 0;
    return r->paused;
}

#define PAUSE_AT_RANDOM(r)              \
    do {                                \
        if (pause_here(r))              \
            return LA_SINK_PAUSE;       \
    } while (0)

static int r_table_begin(void *ud)
{
    resolver *r = ud;
    PAUSE_AT_RANDOM(r);
    memset(r->seen, 0, sizeof r->seen);
    return on_table_begin(r->checked);
}
static int r_table_name(void *ud, const char *n, size_t l)
{
    PAUSE_AT_RANDOM((resolver *)ud);
    return on_table_name(((resolver *)ud)->checked, n, l);
}
static int r_column(void *ud, size_t i, const char *n, size_t nl, const char *t, size_t tl)
{
    PAUSE_AT_RANDOM((resolver *)ud);
    return on_column(((resolver *)ud)->checked, i, n, nl, t, tl);
}
static int r_row_begin(void *ud, size_t n)
{
    PAUSE_AT_RANDOM((resolver *)ud);
    return on_row_begin(((resolver *)ud)->checked, n);
}
static int r_row_end(void *ud, size_t n)
{
    PAUSE_AT_RANDOM((resolver *)ud);
    return on_row_end(((resolver *)ud)->checked, n);
}
static int r_table_end(void *ud)
{
    PAUSE_AT_RANDOM((resolver *)ud);
    return on_table_end(((resolver *)ud)->checked);
}
static int r_member(void *ud, const char *k, size_t kl, const char *j, size_t jl)
{
    PAUSE_AT_RANDOM((resolver *)ud);
    return on_member(((resolver *)ud)->checked, k, kl, j, jl);
}

static int r_cell(void *ud, size_t index, const la_cell *cell)
{
    resolver *r = ud;
    la_cell plain = *cell;
    PAUSE_AT_RANDOM(r);
    if (cell->slot != 0) {
        int slot = cell->slot > 0 ? cell->slot : -cell->slot;
        CHECK(cell->kind == LA_CELL_STRING);
        CHECK(slot >= 1 && slot <= SLOTS);
        if (cell->slot > 0) {
            CHECK(r->seen[slot]);  /* a hit names a string kept in this table */
            plain.str = r->kept[slot].data ? r->kept[slot].data : "";
            plain.len = r->kept[slot].len;
        } else {
            la_buf_clear(&r->kept[slot]);
            CHECK(la_buf_append(&r->kept[slot], cell->str, cell->len) == 0);
            r->seen[slot] = 1;
        }
        plain.slot = 0;
    }
    return on_cell(r->checked, index, &plain);
}

static const la_result_sink resolving_sink = {
    r_table_begin, r_table_name, r_column, r_row_begin,
    r_cell, r_row_end, r_table_end, r_member,
};

/* Replays until the tape has nothing left, through the random pauses. */
static void replay_all(la_tape *tape, resolver *r)
{
    int rc;
    while ((rc = la_tape_replay(tape, &resolving_sink, r)) == LA_SINK_PAUSE)
        ;
    CHECK(rc == 0);
}

/* The body through the tape, replayed after every chunk into the checking
 * sink; returns the parse status. */
static la_parse_status through_tape(const char *doc, size_t doc_len, state *checked)
{
    static resolver r;   /* large: not on the stack */
    la_tape *tape = la_tape_new();
    la_parser *p;
    la_parse_status st = LA_PARSE_OK;
    size_t at = 0, i;
    CHECK(tape != NULL);
    r.checked = checked;
    r.paused = 0;
    for (i = 0; i <= SLOTS; i++)
        la_buf_init(&r.kept[i]);
    p = la_parser_new(la_tape_sink(), tape);
    CHECK(p != NULL);
    while (st == LA_PARSE_OK && at < doc_len) {
        size_t n = 1 + next_random() % 512;
        if (n > doc_len - at)
            n = doc_len - at;
        st = la_parser_feed(p, doc + at, n);
        at += n;
        CHECK(la_tape_flush(tape) == 0);
        replay_all(tape, &r);
    }
    if (st == LA_PARSE_OK)
        st = la_parser_finish(p);
    CHECK(la_tape_flush(tape) == 0);
    replay_all(tape, &r);
    la_parser_free(p);
    la_tape_free(tape);
    for (i = 0; i <= SLOTS; i++)
        la_buf_free(&r.kept[i]);
    return st;
}

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

    /* the tape: no early stops there, so compare with an unstopped parse */
    if (!s.stop_every) {
        la_buf direct, taped;
        state t;
        la_parse_status direct_status = st;
        la_buf_init(&direct);
        la_buf_init(&taped);
        memset(&s, 0, sizeof s);
        s.doc_len = doc_len;
        s.trace = &direct;
        p = la_parser_new(&sink, &s);
        CHECK(p != NULL);
        st = la_parser_feed(p, doc, doc_len);
        if (st == LA_PARSE_OK)
            st = la_parser_finish(p);
        la_parser_free(p);
        CHECK(st == direct_status);
        memset(&t, 0, sizeof t);
        t.doc_len = doc_len;
        t.trace = &taped;
        CHECK(through_tape(doc, doc_len, &t) == st);
        CHECK(direct.len == taped.len);
        CHECK(direct.len == 0 || memcmp(direct.data, taped.data, direct.len) == 0);
        la_buf_free(&direct);
        la_buf_free(&taped);
    }
    return 0;
}
