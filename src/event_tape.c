/*
 * The parser's events, recorded on one thread and replayed on another.
 *
 * With a body worker (body_worker.c), the parser runs on the worker but the
 * Lua values can only be made on the caller's thread: the parser writes its
 * events here (cells already converted, strings unescaped and copied), and
 * the caller replays them into the real sink. Blocks are handed over under
 * a lock; a writer that gets too far ahead waits, so memory stays bounded
 * (MAX_READY) whatever the size of the response. A writer on the owner's
 * own thread never waits: it is drained after each piece of body.
 */
#include "la_core.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE (64 * 1024)
#define MAX_READY (1024 * 1024)   /* recorded but not yet replayed */
#define MAX_SPARE 32          /* more than can be in flight: blocks are reused, never freed midway */

enum {
    OP_TABLE_BEGIN = 1, OP_TABLE_NAME, OP_COLUMN, OP_ROW_BEGIN, OP_ROW_END,
    OP_TABLE_END, OP_MEMBER,
    OP_CACHED_STRING,     /* a string cell: the one kept at a slot */
    OP_KEPT_STRING,       /* a string cell, to be kept at a slot */
    OP_CELL = 16          /* + la_cell_kind */
};

typedef struct block {
    struct block *next;
    size_t len, cap;
    char data[];
} block;

/* The writer's fields and the reader's sit on separate cache lines: a line
 * written by one thread and read by the other for every record would bounce
 * between the cores (it cost more than the replay itself). */
#define CACHE_LINE 64

struct la_tape {
    /* shared, under lock */
    pthread_mutex_t lock;
    pthread_cond_t room;
    block *ready, **ready_end; /* handed over, in order */
    size_t ready_bytes;
    block *spare;
    int nspare;
    int cancelled;
    pthread_t owner;           /* the thread that replays (set once) */
    /* the writer's */
    char writer_line[CACHE_LINE];
    block *writing;            /* not yet handed over */
    int no_memory;             /* a block could not be had */
    la_string_cache *strings;  /* which strings repeat */
    /* the reader's */
    char reader_line[CACHE_LINE];
    block *taken;              /* being replayed (freed with the tape if a
                                  sink raised through the replay) */
    size_t taken_pos;
};

la_tape *la_tape_new(void)
{
    la_tape *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return NULL;
    }
    if (pthread_cond_init(&t->room, NULL) != 0) {
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }
    t->owner = pthread_self();
    t->ready_end = &t->ready;
    t->strings = la_string_cache_new();  /* NULL: every string sent whole */
    return t;
}

static void free_list(block *b)
{
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
}

void la_tape_free(la_tape *t)
{
    if (!t)
        return;
    free(t->writing);
    free_list(t->ready);
    free_list(t->taken);
    free_list(t->spare);
    la_string_cache_free(t->strings);
    pthread_cond_destroy(&t->room);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void la_tape_cancel(la_tape *t)
{
    pthread_mutex_lock(&t->lock);
    t->cancelled = 1;
    pthread_cond_broadcast(&t->room);
    pthread_mutex_unlock(&t->lock);
}

/* Hands the writer's block over; waits while too much is pending, unless
 * the writer is the replaying thread itself. 0, or -1 once cancelled. */
int la_tape_flush(la_tape *t)
{
    block *b = t->writing;
    int may_wait = !pthread_equal(pthread_self(), t->owner), cancelled;
    pthread_mutex_lock(&t->lock);
    if (b && b->len) {
        t->writing = NULL;
        b->next = NULL;
        *t->ready_end = b;
        t->ready_end = &b->next;
        t->ready_bytes += b->len;
    }
    while (may_wait && !t->cancelled && t->ready_bytes > MAX_READY)
        pthread_cond_wait(&t->room, &t->lock);
    cancelled = t->cancelled;
    pthread_mutex_unlock(&t->lock);
    return cancelled ? -1 : 0;
}

/* Room for n more bytes in the writer's block; NULL when out of memory or
 * cancelled (the parser then stops). */
static char *reserve(la_tape *t, size_t n)
{
    block *b = t->writing;
    if (b && b->cap - b->len >= n)
        return b->data + b->len;
    if (b && b->len && la_tape_flush(t) != 0)
        return NULL;
    if (!t->writing) {
        block *fresh = NULL;
        if (n <= BLOCK_SIZE) {
            pthread_mutex_lock(&t->lock);
            if (t->spare) {
                fresh = t->spare;
                t->spare = fresh->next;
                t->nspare--;
            }
            pthread_mutex_unlock(&t->lock);
        }
        if (!fresh) {
            size_t cap = n > BLOCK_SIZE ? n : BLOCK_SIZE;
            fresh = malloc(sizeof *fresh + cap);
            if (!fresh) {
                t->no_memory = 1;
                return NULL;
            }
            fresh->cap = cap;
        }
        fresh->len = 0;
        fresh->next = NULL;
        t->writing = fresh;
    } else if (t->writing->cap - t->writing->len < n) {
        /* an empty block too small for this record */
        block *bigger = realloc(t->writing, sizeof *bigger + n);
        if (!bigger) {
            t->no_memory = 1;
            return NULL;
        }
        bigger->cap = n;
        t->writing = bigger;
    }
    return t->writing->data + t->writing->len;
}

/* ------------------------------------------------------------ recording */

/* What a recorder answers when reserve gave no room: cancelled is a stop,
 * memory running out an error (events would be missing from the result). */
static int no_room(const la_tape *t)
{
    return t->no_memory ? LA_SINK_NO_MEMORY : LA_SINK_STOP;
}

static char *put(char *p, const void *v, size_t n)
{
    memcpy(p, v, n);
    return p + n;
}

static char *put_size(char *p, size_t v)
{
    return put(p, &v, sizeof v);
}

static int record(la_tape *t, const char *p)
{
    t->writing->len = (size_t)(p - t->writing->data);
    return 0;
}

static int rec_simple(la_tape *t, unsigned char op, size_t value)
{
    char *p = reserve(t, 1 + sizeof value);
    if (!p)
        return no_room(t);
    *p++ = (char)op;
    return record(t, put_size(p, value));
}

static int rec_table_begin(void *ud)
{
    la_tape *t = ud;
    if (t->strings)
        la_string_cache_reset(t->strings);  /* slots are per table */
    return rec_simple(t, OP_TABLE_BEGIN, 0);
}

static int rec_table_name(void *ud, const char *name, size_t len)
{
    la_tape *t = ud;
    char *p = reserve(t, 1 + sizeof len + len);
    if (!p)
        return no_room(t);
    *p++ = OP_TABLE_NAME;
    p = put_size(p, len);
    return record(t, put(p, name, len));
}

static int rec_column(void *ud, size_t index, const char *name, size_t name_len,
                      const char *type, size_t type_len)
{
    la_tape *t = ud;
    char *p = reserve(t, 1 + 3 * sizeof index + name_len + type_len);
    if (!p)
        return no_room(t);
    *p++ = OP_COLUMN;
    p = put_size(p, index);
    p = put_size(p, name_len);
    p = put(p, name, name_len);
    p = put_size(p, type_len);
    return record(t, put(p, type, type_len));
}

static int rec_row_begin(void *ud, size_t ncolumns)
{
    return rec_simple(ud, OP_ROW_BEGIN, ncolumns);
}

/* A string cell through the string cache: a repeat is sent as its slot. */
static int rec_string(la_tape *t, uint32_t column, const la_cell *cell)
{
    int32_t slot = la_string_cache_find(t->strings, column, cell->str, cell->len);
    char *p;
    if (slot < 0 && la_string_cache_keep(t->strings, -slot, cell->str, cell->len) != 0)
        slot = 0;
    p = reserve(t, 1 + sizeof column + sizeof slot + sizeof cell->len + (slot > 0 ? 0 : cell->len));
    if (!p)
        return no_room(t);
    if (slot == 0) {
        *p++ = (char)(OP_CELL + LA_CELL_STRING);
        p = put(p, &column, sizeof column);
    } else {
        *p++ = (char)(slot > 0 ? OP_CACHED_STRING : OP_KEPT_STRING);
        p = put(p, &column, sizeof column);
        p = put(p, &slot, sizeof slot);
        if (slot > 0)
            return record(t, p);
    }
    p = put_size(p, cell->len);
    return record(t, put(p, cell->str, cell->len));
}

static int rec_cell(void *ud, size_t index, const la_cell *cell)
{
    la_tape *t = ud;
    uint32_t column = (uint32_t)index;
    if (cell->kind == LA_CELL_STRING && t->strings)
        return rec_string(t, column, cell);
    size_t room = 1 + sizeof column + sizeof cell->len
                  + (cell->kind == LA_CELL_STRING ? cell->len : sizeof(double));
    char *p = reserve(t, room);
    if (!p)
        return no_room(t);
    *p++ = (char)(OP_CELL + cell->kind);
    p = put(p, &column, sizeof column);
    switch (cell->kind) {
    case LA_CELL_BOOL: *p++ = (char)(cell->boolean != 0); break;
    case LA_CELL_INTEGER: p = put(p, &cell->integer, sizeof cell->integer); break;
    case LA_CELL_REAL: p = put(p, &cell->real, sizeof cell->real); break;
    case LA_CELL_STRING:
        p = put_size(p, cell->len);
        p = put(p, cell->str, cell->len);
        break;
    default: break;
    }
    return record(t, p);
}

static int rec_row_end(void *ud, size_t ncells)
{
    return rec_simple(ud, OP_ROW_END, ncells);
}

static int rec_table_end(void *ud)
{
    return rec_simple(ud, OP_TABLE_END, 0);
}

static int rec_member(void *ud, const char *key, size_t key_len, const char *json, size_t len)
{
    la_tape *t = ud;
    char *p = reserve(t, 1 + 2 * sizeof len + key_len + len);
    if (!p)
        return no_room(t);
    *p++ = OP_MEMBER;
    p = put_size(p, key_len);
    p = put(p, key, key_len);
    p = put_size(p, len);
    return record(t, put(p, json, len));
}

static const la_result_sink recording_sink = {
    rec_table_begin, rec_table_name, rec_column, rec_row_begin,
    rec_cell, rec_row_end, rec_table_end, rec_member,
};

const la_result_sink *la_tape_sink(void)
{
    return &recording_sink;
}

/* ------------------------------------------------------------ replaying */

static const char *get_size(const char *p, size_t *v)
{
    memcpy(v, p, sizeof *v);
    return p + sizeof *v;
}

/* Replays one record at p; sets *next past it. Returns the sink's answer. */
static int replay_one(const char *p, const char **next, const la_result_sink *sink, void *ud)
{
    unsigned char op = (unsigned char)*p++;
    size_t a, b;
    const char *s1, *s2;
    if (op >= OP_CELL || op == OP_CACHED_STRING || op == OP_KEPT_STRING) {
        la_cell cell;
        uint32_t column;
        memset(&cell, 0, sizeof cell);
        memcpy(&column, p, sizeof column);
        p += sizeof column;
        if (op >= OP_CELL) {
            cell.kind = (la_cell_kind)(op - OP_CELL);
        } else {
            int32_t slot;  /* > 0 cached, < 0 to keep: as recorded */
            memcpy(&slot, p, sizeof slot);
            p += sizeof slot;
            cell.kind = LA_CELL_STRING;
            cell.slot = slot;
        }
        switch (cell.kind) {
        case LA_CELL_BOOL: cell.boolean = *p++; break;
        case LA_CELL_INTEGER: memcpy(&cell.integer, p, sizeof cell.integer); p += sizeof cell.integer; break;
        case LA_CELL_REAL: memcpy(&cell.real, p, sizeof cell.real); p += sizeof cell.real; break;
        case LA_CELL_STRING:
            if (op == OP_CACHED_STRING)
                break;  /* no bytes: the reader has the string at the slot */
            p = get_size(p, &cell.len);
            cell.str = p;
            p += cell.len;
            break;
        default: break;
        }
        *next = p;
        return sink->cell(ud, column, &cell);
    }
    switch (op) {
    case OP_TABLE_BEGIN: *next = p + sizeof a; return sink->table_begin(ud);
    case OP_TABLE_END: *next = p + sizeof a; return sink->table_end(ud);
    case OP_ROW_BEGIN: *next = get_size(p, &a); return sink->row_begin(ud, a);
    case OP_ROW_END: *next = get_size(p, &a); return sink->row_end(ud, a);
    case OP_TABLE_NAME:
        p = get_size(p, &a);
        *next = p + a;
        return sink->table_name(ud, p, a);
    case OP_COLUMN: {
        size_t index;
        p = get_size(p, &index);
        p = get_size(p, &a);
        s1 = p;
        p = get_size(p + a, &b);
        *next = p + b;
        return sink->column(ud, index, s1, a, p, b);
    }
    case OP_MEMBER:
        p = get_size(p, &a);
        s1 = p;
        p = get_size(p + a, &b);
        s2 = p;
        *next = p + b;
        return sink->member(ud, s1, a, s2, b);
    default:
        *next = p;  /* cannot happen: the tape is written only above */
        return LA_SINK_STOP;
    }
}

int la_tape_replay(la_tape *t, const la_result_sink *sink, void *ud)
{
    int rc = 0;
    for (;;) {
        block *b;
        if (!t->taken) {
            pthread_mutex_lock(&t->lock);
            t->taken = t->ready;
            t->ready = NULL;
            t->ready_end = &t->ready;
            pthread_mutex_unlock(&t->lock);
            t->taken_pos = 0;
            if (!t->taken)
                return 0;
        }
        b = t->taken;
        {
            /* the position is kept locally and stored at the end: a sink
             * that raises ends the replays (its owner fails for good), a
             * sink's answer (stop, pause) leaves the next replay where
             * this one ended */
            const char *p = b->data + t->taken_pos, *end = b->data + b->len;
            while (rc == 0 && p < end) {
                const char *at = p;
                rc = replay_one(p, &p, sink, ud);
                if (rc == LA_SINK_PAUSE)
                    p = at;  /* given again at the next replay */
            }
            t->taken_pos = (size_t)(p - b->data);
        }
        if (t->taken_pos < b->len)
            return rc;  /* stopped inside a block */
        t->taken = b->next;
        t->taken_pos = 0;
        pthread_mutex_lock(&t->lock);
        t->ready_bytes -= b->len;
        if (b->cap == BLOCK_SIZE && t->nspare < MAX_SPARE) {
            b->next = t->spare;
            t->spare = b;
            t->nspare++;
            b = NULL;
        }
        pthread_cond_broadcast(&t->room);
        pthread_mutex_unlock(&t->lock);
        free(b);
        if (rc != 0)
            return rc;
    }
}
