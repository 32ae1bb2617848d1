/*
 * A column of a result decoded with shape = "columns": the cells of one
 * column kept in C, compact and typed, and a Lua value made only when a
 * cell is read (col[i], col:totable()).
 *
 * Why: a full result in rows costs one Lua table per row and one interned
 * Lua string per string cell, and interning ~300k short strings in a big,
 * cold string table is where most of the time goes (issue 15's profile).
 * Here a cell is a kind byte and a payload: 4 bytes while the cells of its
 * chunk need no more (a string's place, a ref), 8 once one does (a number,
 * a datetime's ticks: the chunk is widened). Strings are kept as their
 * length and bytes in blocks of the column's that never move, so growing
 * copies nothing; a value repeated through the string cache's slots
 * (lua_decoder.c) is stored once and referred to again, and strings the
 * slots miss (longer ones, more distinct values than slots) are looked up
 * in a hash set of the column's own, kept while the column's values repeat.
 *
 * Typed text is kept by its value: a datetime the service sent in its own
 * form as its ticks (the number of fractional digits in the kind: the
 * text is made again exactly when read), a guid as its 16 bytes (its case
 * in the kind). Anything else in such a column is kept as a string.
 *
 * Cells whose value only Lua can make (a datetime function's result, a
 * decoded dynamic value) are made while decoding and kept in the column's
 * user value table at their position (kind K_LUA).
 */
#include "lua_binding.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum cell_kind {
    K_NULL = 0,
    K_FALSE,
    K_TRUE,
    K_INTEGER,  /* wide: integer */
    K_REAL,     /* wide: real */
    K_STRING,   /* ref: the string's length (see keep_bytes), then its bytes */
    K_LUA,      /* the value at [position] of the user value table */
    K_GUID_LOWER, K_GUID_UPPER,  /* ref: the guid's 16 bytes; its text in that case */
    K_DATETIME  /* ... K_DATETIME + 7: wide: integer: ticks; the text had that
                   many fractional digits (la_datetime_parse's form) */
};
#define K_DATETIME_LAST (K_DATETIME + 7)
#define IS_WIDE(kind) ((kind) == K_INTEGER || (kind) == K_REAL || \
                       ((kind) >= K_DATETIME && (kind) <= K_DATETIME_LAST))
#define HAS_REF(kind) ((kind) == K_STRING || (kind) == K_GUID_LOWER || (kind) == K_GUID_UPPER)

typedef union payload {
    long long integer;
    double real;
} payload;

/* A place in the column's blocks: the block's number and the offset in it. */
typedef uint32_t ref;
#define REF_OFFSET_BITS 20
#define BLOCK_MAX ((size_t)1 << REF_OFFSET_BITS)   /* offsets fit in their bits */
#define MAX_BLOCKS 4095   /* ... and the block numbers in the rest (ref + 1 never wraps) */
#define BLOCK_FIRST (16 * 1024)

/* Cells in chunks of CHUNK (never moved: growing copies nothing). */
#define CHUNK_BITS 12
#define CHUNK ((size_t)1 << CHUNK_BITS)
typedef struct chunk {
    unsigned char kinds[CHUNK];   /* enum cell_kind */
    ref *narrow;                  /* the payloads while they fit in 4 bytes, */
    payload *wide;                /* ... or 8 (then narrow is NULL; refs widened) */
} chunk;

/* The column's distinct strings, for storing a repeat once: open
 * addressing over their refs + 1 (0: empty). A column whose first
 * DEDUPE_EARLY / 2 strings never repeat (ids, timestamps) drops it; after
 * that it is judged each time it must grow past DEDUPE_JUDGED slots, and
 * dropped when its repeats saved less than it costs. The judging starts
 * late: values drawn from a large pool repeat only after many rows. */
#define DEDUPE_EARLY 4096
#define DEDUPE_JUDGED (64 * 1024)
typedef struct dedupe {
    uint32_t *slots;
    uint32_t *hashes;
    size_t cap, used;         /* cap: a power of 2, used <= cap / 2 */
    size_t saved;             /* bytes the repeats did not store again */
    int off;
} dedupe;

struct la_column {
    size_t n;                 /* cells */
    chunk **chunks;
    size_t nchunks, chunks_cap;
    int wide;                 /* new chunks start wide: the last one had to be */
    unsigned char **blocks;   /* the strings' blocks, by number */
    size_t nblocks, blocks_cap;
    unsigned char *free_at;   /* room left in the block with room, */
    size_t free_left, next_block;
    size_t current;           /* ... its number (a long string's own block may be newer) */
    dedupe seen;
    int lua_values;           /* the user value table exists (K_LUA cells) */
    la_type type;             /* LA_TYPE_DATETIME, LA_TYPE_GUID: kept by value */
};

#define CHUNK_OF(c, i) ((c)->chunks[(i) >> CHUNK_BITS])
#define KIND(c, i) (CHUNK_OF(c, i)->kinds[(i) & (CHUNK - 1)])

/* ------------------------------------------------------------ payloads */

static ref ref_of(const la_column *c, size_t i)
{
    const chunk *ch = CHUNK_OF(c, i);
    size_t j = i & (CHUNK - 1);
    return ch->narrow ? ch->narrow[j] : (ref)ch->wide[j].integer;
}

static const unsigned char *bytes_at(const la_column *c, ref r)
{
    return c->blocks[r >> REF_OFFSET_BITS] + (r & (BLOCK_MAX - 1));
}

/* A string is kept as its length (one byte below 255; else 255 and 4
 * bytes) and its bytes. */
static const unsigned char *string_of(const unsigned char *at, size_t *len)
{
    if (at[0] < 255) {
        *len = at[0];
        return at + 1;
    } else {
        uint32_t n;
        memcpy(&n, at + 1, sizeof n);
        *len = n;
        return at + 5;
    }
}

/* Cell i's payload becomes 8 bytes wide: its chunk is widened first (the
 * refs of its cells so far carried over). -1 when memory ran out. */
static int set_wide(la_column *c, size_t i, payload v)
{
    chunk *ch = CHUNK_OF(c, i);
    if (ch->narrow) {
        size_t j, filled = i & (CHUNK - 1);  /* the cells before i */
        payload *wide = malloc(CHUNK * sizeof *wide);
        if (!wide)
            return -1;
        for (j = 0; j < filled; j++)
            wide[j].integer = ch->narrow[j];
        free(ch->narrow);
        ch->narrow = NULL;
        ch->wide = wide;
        c->wide = 1;
    }
    ch->wide[i & (CHUNK - 1)] = v;
    return 0;
}

static void set_ref(la_column *c, size_t i, ref r)
{
    chunk *ch = CHUNK_OF(c, i);
    if (ch->narrow)
        ch->narrow[i & (CHUNK - 1)] = r;
    else
        ch->wide[i & (CHUNK - 1)].integer = r;
}

/* ------------------------------------------------------------ building */

/* Room for one more cell; -1 when memory ran out. */
static int reserve_cell(la_column *c)
{
    chunk *fresh;
    if (c->n < c->nchunks * CHUNK)
        return 0;
    if (c->nchunks == c->chunks_cap) {
        size_t cap = c->chunks_cap ? c->chunks_cap * 2 : 8;
        chunk **grown = realloc(c->chunks, cap * sizeof *grown);
        if (!grown)
            return -1;
        c->chunks = grown;
        c->chunks_cap = cap;
    }
    fresh = malloc(sizeof *fresh);
    if (!fresh)
        return -1;
    fresh->narrow = NULL;
    fresh->wide = NULL;
    if (c->wide)
        fresh->wide = malloc(CHUNK * sizeof *fresh->wide);
    else
        fresh->narrow = malloc(CHUNK * sizeof *fresh->narrow);
    if (!fresh->wide && !fresh->narrow) {
        free(fresh);
        return -1;
    }
    c->chunks[c->nchunks++] = fresh;
    return 0;
}

/* A new block with room for need bytes at least, its number in *number;
 * -1 when memory ran out (or the column has its most blocks). A string
 * longer than a block gets one of its own, and the newest block stays the
 * one with room. */
static int grow_blocks(la_column *c, size_t need, size_t *number)
{
    size_t size = c->next_block ? c->next_block : BLOCK_FIRST;
    unsigned char *b;
    int own = need > BLOCK_MAX;
    if (c->nblocks == MAX_BLOCKS)
        return -1;
    if (c->nblocks == c->blocks_cap) {
        size_t cap = c->blocks_cap ? c->blocks_cap * 2 : 16;
        unsigned char **grown = realloc(c->blocks, cap * sizeof *grown);
        if (!grown)
            return -1;
        c->blocks = grown;
        c->blocks_cap = cap;
    }
    if (own)
        size = need;
    else if (need > size)
        size = BLOCK_MAX;
    else if (c->next_block < BLOCK_MAX)
        c->next_block = size * 2;
    b = malloc(size);
    if (!b)
        return -1;
    *number = c->nblocks;
    c->blocks[c->nblocks++] = b;
    if (!own) {
        c->current = *number;
        c->free_at = b;
        c->free_left = size;
    }
    return 0;
}

/* Room for need bytes; their place in *out. -1 when memory ran out. */
static unsigned char *take_room(la_column *c, size_t need, ref *out)
{
    size_t number;
    unsigned char *at;
    if (need > BLOCK_MAX) {
        if (grow_blocks(c, need, &number) != 0)
            return NULL;
        *out = (ref)(number << REF_OFFSET_BITS);
        return c->blocks[number];
    }
    if (need > c->free_left && grow_blocks(c, need, &number) != 0)
        return NULL;
    at = c->free_at;
    *out = (ref)(c->current << REF_OFFSET_BITS | (size_t)(at - c->blocks[c->current]));
    c->free_at += need;
    c->free_left -= need;
    return at;
}

/* Copies a string into the blocks; -1 when memory ran out. */
static int keep_bytes(la_column *c, const char *s, size_t len, ref *out)
{
    unsigned char *at;
    if (len > UINT32_MAX)
        return -1;
    at = take_room(c, (len < 255 ? 1 : 5) + len, out);
    if (!at)
        return -1;
    if (len < 255) {
        at[0] = (unsigned char)len;
        memcpy(at + 1, s, len);
    } else {
        uint32_t n = (uint32_t)len;
        at[0] = 255;
        memcpy(at + 1, &n, sizeof n);
        memcpy(at + 5, s, len);
    }
    return 0;
}

static void dedupe_drop(dedupe *d)
{
    free(d->slots);
    free(d->hashes);
    d->slots = NULL;
    d->hashes = NULL;
    d->cap = d->used = 0;
    d->off = 1;
}

/* Doubles the set (or makes it); -1 when memory ran out. */
static int dedupe_grow(dedupe *d)
{
    size_t cap = d->cap ? d->cap * 2 : 1024, i, j;
    uint32_t *slots = calloc(cap, sizeof *slots);
    uint32_t *hashes = malloc(cap * sizeof *hashes);
    if (!slots || !hashes) {
        free(slots);
        free(hashes);
        return -1;
    }
    for (i = 0; i < d->cap; i++) {
        if (!d->slots[i])
            continue;
        for (j = d->hashes[i] & (cap - 1); slots[j]; j = (j + 1) & (cap - 1))
            ;
        slots[j] = d->slots[i];
        hashes[j] = d->hashes[i];
    }
    free(d->slots);
    free(d->hashes);
    d->slots = slots;
    d->hashes = hashes;
    d->cap = cap;
    return 0;
}

/* A string's ref: the one stored before when the column has it, else its
 * bytes kept now (and remembered). -1 when memory ran out. */
static int keep_string(la_column *c, const char *s, size_t len, ref *out)
{
    dedupe *d = &c->seen;
    uint32_t hash;
    size_t i;
    if (d->off)
        return keep_bytes(c, s, len, out);
    if (d->used >= d->cap / 2) {
        if ((d->cap == DEDUPE_EARLY && d->saved == 0) ||
            (d->cap >= DEDUPE_JUDGED && d->saved < d->cap * (sizeof *d->slots + sizeof *d->hashes))) {
            dedupe_drop(d);  /* values that do not repeat enough: stop looking */
            return keep_bytes(c, s, len, out);
        }
        if (dedupe_grow(d) != 0)
            return -1;
    }
    hash = la_hash_bytes(s, len);
    for (i = hash & (d->cap - 1); d->slots[i]; i = (i + 1) & (d->cap - 1)) {
        size_t n;
        const unsigned char *bytes = string_of(bytes_at(c, d->slots[i] - 1), &n);
        if (d->hashes[i] == hash && n == len && memcmp(bytes, s, len) == 0) {
            d->saved += len;
            *out = d->slots[i] - 1;
            return 0;
        }
    }
    if (keep_bytes(c, s, len, out) != 0)
        return -1;
    d->slots[i] = *out + 1;
    d->hashes[i] = hash;
    d->used++;
    return 0;
}

/* A datetime in the service's form, by its value: the kind says how many
 * fractional digits the text had (the parser reads fixed places, so the
 * ticks and that count give the same text back). 0 when kept so. */
static int read_datetime(const char *s, size_t len, payload *p, unsigned char *kind)
{
    long long ticks;
    if (la_datetime_parse(s, len, &ticks) != 0)
        return -1;
    p->integer = ticks;
    *kind = (unsigned char)(K_DATETIME + (len > 20 ? len - 21 : 0));
    return 0;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* A guid's text, 8-4-4-4-12 hex digits all of one case, as its 16 bytes.
 * 1 when the text is not such a guid; -1 when memory ran out. */
static int keep_guid(la_column *c, const char *s, size_t len, ref *out, unsigned char *kind)
{
    static const unsigned char dash[] = {8, 13, 18, 23};
    unsigned char bytes[16], *at;
    int lower = 0, upper = 0;
    size_t i, k = 0, d = 0;
    if (len != 36)
        return 1;
    for (i = 0; i < len; i++) {
        int hi, lo;
        if (d < 4 && i == dash[d]) {
            if (s[i] != '-')
                return 1;
            d++;
            continue;
        }
        hi = hex_value(s[i]);
        lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0 || (d < 4 && i + 1 == dash[d]))
            return 1;
        lower |= (s[i] >= 'a' && s[i] <= 'f') || (s[i + 1] >= 'a' && s[i + 1] <= 'f');
        upper |= (s[i] >= 'A' && s[i] <= 'F') || (s[i + 1] >= 'A' && s[i + 1] <= 'F');
        bytes[k++] = (unsigned char)(hi << 4 | lo);
        i++;
    }
    if (lower && upper)
        return 1;  /* mixed case: the text as it is */
    at = take_room(c, sizeof bytes, out);
    if (!at)
        return -1;
    memcpy(at, bytes, sizeof bytes);
    *kind = upper ? K_GUID_UPPER : K_GUID_LOWER;
    return 0;
}

/* A string cell: by its value in a datetime or guid column, else as text. */
static int append_text(la_column *c, const char *s, size_t len, unsigned char *kind)
{
    payload v;
    ref r;
    if (c->type == LA_TYPE_DATETIME && read_datetime(s, len, &v, kind) == 0)
        return set_wide(c, c->n, v);
    if (c->type == LA_TYPE_GUID) {
        int rc = keep_guid(c, s, len, &r, kind);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            set_ref(c, c->n, r);
            return 0;
        }
    }
    if (keep_string(c, s, len, &r) != 0)
        return -1;
    *kind = K_STRING;
    set_ref(c, c->n, r);
    return 0;
}

int la_column_append(la_column *c, const la_cell *cell)
{
    unsigned char kind = K_NULL;
    payload v;
    int rc = 0;
    if (reserve_cell(c) != 0)
        return -1;
    switch (cell->kind) {
    case LA_CELL_BOOL:
        kind = cell->boolean ? K_TRUE : K_FALSE;
        break;
    case LA_CELL_INTEGER:
        kind = K_INTEGER;
        v.integer = cell->integer;
        rc = set_wide(c, c->n, v);
        break;
    case LA_CELL_REAL:
        kind = K_REAL;
        v.real = cell->real;
        rc = set_wide(c, c->n, v);
        break;
    case LA_CELL_STRING:
        rc = append_text(c, cell->str, cell->len, &kind);
        break;
    default:
        break;
    }
    if (rc != 0)
        return -1;
    KIND(c, c->n) = kind;
    c->n++;
    return 0;
}

int la_column_append_null(la_column *c)
{
    static const la_cell null_cell;
    return la_column_append(c, &null_cell);
}

int la_column_append_repeat(la_column *c, size_t at)
{
    unsigned char kind = at >= 1 && at <= c->n ? KIND(c, at - 1) : K_NULL;
    if (!HAS_REF(kind) && !(kind >= K_DATETIME && kind <= K_DATETIME_LAST))
        return la_column_append_null(c);  /* cannot happen: the decoder names a string of its own */
    if (reserve_cell(c) != 0)
        return -1;
    if (IS_WIDE(kind)) {
        if (set_wide(c, c->n, CHUNK_OF(c, at - 1)->wide[(at - 1) & (CHUNK - 1)]) != 0)
            return -1;
    } else {
        set_ref(c, c->n, ref_of(c, at - 1));
    }
    KIND(c, c->n) = kind;
    c->n++;
    return 0;
}

void la_column_done(la_column *c)
{
    dedupe_drop(&c->seen);
}

size_t la_column_count(const la_column *c)
{
    return c->n;
}

int la_column_append_lua(lua_State *L, int idx, la_column *c)
{
    idx = lua_absindex(L, idx);
    if (reserve_cell(c) != 0) {
        lua_pop(L, 1);
        return -1;
    }
    if (!c->lua_values) {
        lua_newtable(L);
        la_setuservalue(L, idx);
        c->lua_values = 1;
    }
    la_getuservalue(L, idx);
    lua_insert(L, -2);
    lua_rawseti(L, -2, (int)c->n + 1);  /* may raise (memory): the cell is not counted yet */
    lua_pop(L, 1);
    KIND(c, c->n) = K_LUA;
    c->n++;
    return 0;
}

/* ------------------------------------------------------------ reading */

static la_column *check_column(lua_State *L)
{
    return luaL_checkudata(L, 1, COLUMN_MT);
}

/* A guid's text from its 16 bytes. */
static void push_guid(lua_State *L, const unsigned char *bytes, int upper)
{
    const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char text[36];
    size_t i, k = 0;
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            text[k++] = '-';
        text[k++] = hex[bytes[i] >> 4];
        text[k++] = hex[bytes[i] & 15];
    }
    lua_pushlstring(L, text, sizeof text);
}

/* A datetime's text as the service sent it: digits fractional digits. */
static void push_datetime(lua_State *L, long long ticks, int digits)
{
    char text[LA_DATETIME_TEXT_SIZE];
    size_t len;
    if (la_datetime_format(ticks, text, sizeof text) != 0) {
        lua_pushliteral(L, "");  /* cannot happen: the ticks came from la_datetime_parse */
        return;
    }
    /* "YYYY-MM-DDTHH:MM:SS.fffffffZ": keep `digits` of the fraction */
    len = digits ? (size_t)20 + (size_t)digits : 19;
    text[len] = 'Z';
    lua_pushlstring(L, text, len + 1);
}

/* Pushes cell `at` (1-based, in range) of the column at index 1. */
static void push_value(lua_State *L, const la_column *c, size_t at)
{
    unsigned char kind = KIND(c, at - 1);
    const chunk *ch = CHUNK_OF(c, at - 1);
    /* a wide kind's chunk is wide (set_wide) */
    const payload *p = IS_WIDE(kind) ? &ch->wide[(at - 1) & (CHUNK - 1)] : NULL;
    la_cell cell;
    size_t len;
    const unsigned char *bytes;
    switch (kind) {
    case K_STRING:
        bytes = string_of(bytes_at(c, ref_of(c, at - 1)), &len);
        lua_pushlstring(L, (const char *)bytes, len);
        return;
    case K_LUA:
        la_getuservalue(L, 1);
        lua_rawgeti(L, -1, (int)at);
        lua_remove(L, -2);
        return;
    case K_GUID_LOWER: case K_GUID_UPPER:
        push_guid(L, bytes_at(c, ref_of(c, at - 1)), kind == K_GUID_UPPER);
        return;
    default:
        if (kind >= K_DATETIME && kind <= K_DATETIME_LAST && p) {
            push_datetime(L, p->integer, kind - K_DATETIME);
            return;
        }
        break;
    }
    /* the rest as the rows have them (one push for both shapes) */
    memset(&cell, 0, sizeof cell);
    switch (kind) {
    case K_FALSE: case K_TRUE:
        cell.kind = LA_CELL_BOOL;
        cell.boolean = kind == K_TRUE;
        break;
    case K_INTEGER: cell.kind = LA_CELL_INTEGER; cell.integer = p ? p->integer : 0; break;
    case K_REAL: cell.kind = LA_CELL_REAL; cell.real = p ? p->real : 0; break;
    default: cell.kind = LA_CELL_NULL; break;
    }
    la_push_cell(L, &cell);
}

/* The position a key names: an integral number from 1 to n; 0 otherwise. */
static size_t position(lua_State *L, int idx, const la_column *c)
{
    lua_Number v;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        return i >= 1 && (lua_Unsigned)i <= c->n ? (size_t)i : 0;
    }
#endif
    v = lua_tonumber(L, idx);
    if (!(v >= 1 && v <= (lua_Number)c->n) || (lua_Number)(size_t)v != v)
        return 0;
    return (size_t)v;
}

/* col[i]: the value of cell i; col.name: a method (upvalue 1: the
 * methods); any other key: nil. */
static int column_index(lua_State *L)
{
    la_column *c = check_column(L);
    size_t at;
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
        return 1;
    }
    at = position(L, 2, c);
    if (!at)
        return 0;
    push_value(L, c, at);
    return 1;
}

static int column_len(lua_State *L)
{
    la_column *c = check_column(L);
    la_pushint64(L, (long long)c->n);
    return 1;
}

/* Strings a column:totable() made lately, by where they are stored: a
 * repeated value (stored once) is pushed again from here rather than
 * interned anew. Direct-mapped, in a Lua table's array. */
#define RECENT 64

/* col:totable(): a plain Lua array of every value. */
static int column_totable(lua_State *L)
{
    la_column *c = check_column(L);
    ref recent_at[RECENT];   /* + 1: 0 is none */
    size_t i;
    int recent;
    luaL_argcheck(L, c->n <= (size_t)INT_MAX, 1, "too many values for a Lua table");
    lua_settop(L, 1);
    lua_createtable(L, (int)c->n, 0);
    lua_createtable(L, RECENT, 0);
    recent = lua_gettop(L);
    for (i = 0; i < RECENT; i++)
        recent_at[i] = 0;
    for (i = 1; i <= c->n; i++) {
        if (KIND(c, i - 1) == K_STRING) {
            ref r = ref_of(c, i - 1);
            unsigned h = (unsigned)((r ^ (r >> 9)) % RECENT);
            if (recent_at[h] == r + 1) {
                lua_rawgeti(L, recent, (int)h + 1);
            } else {
                size_t len;
                const unsigned char *bytes = string_of(bytes_at(c, r), &len);
                lua_pushlstring(L, (const char *)bytes, len);
                lua_pushvalue(L, -1);
                lua_rawseti(L, recent, (int)h + 1);
                recent_at[h] = r + 1;
            }
        } else {
            push_value(L, c, i);
        }
        lua_rawseti(L, 2, (int)i);
    }
    lua_settop(L, 2);
    return 1;
}

/* The iterator of __pairs and __ipairs: (col, i) -> i + 1, col[i + 1] */
static int column_next(lua_State *L)
{
    la_column *c = check_column(L);
    lua_Integer i = luaL_checkinteger(L, 2) + 1;
    if (i < 1 || (size_t)i > c->n)
        return 0;
    lua_pushinteger(L, i);
    push_value(L, c, (size_t)i);
    return 2;
}

static int column_pairs(lua_State *L)
{
    check_column(L);
    lua_pushcfunction(L, column_next);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    return 3;
}

/* __gc and __close: frees the cells; the column is then empty. */
static int column_close(lua_State *L)
{
    la_column *c = check_column(L);
    size_t i;
    for (i = 0; i < c->nchunks; i++) {
        free(c->chunks[i]->narrow);
        free(c->chunks[i]->wide);
        free(c->chunks[i]);
    }
    free(c->chunks);
    for (i = 0; i < c->nblocks; i++)
        free(c->blocks[i]);
    free(c->blocks);
    dedupe_drop(&c->seen);
    c->chunks = NULL;
    c->blocks = NULL;
    c->free_at = NULL;
    c->n = c->nchunks = c->chunks_cap = c->free_left = 0;
    c->nblocks = c->blocks_cap = 0;
    return 0;
}

static int column_tostring(lua_State *L)
{
    la_column *c = check_column(L);
    lua_pushfstring(L, "loganalytics.column (%p): %d values", (void *)c, (int)c->n);
    return 1;
}

la_column *la_column_push(lua_State *L, la_type type)
{
    la_column *c = la_newuserdata_uv(L, sizeof *c);
    memset(c, 0, sizeof *c);
    c->type = type;
    /* numbers and datetimes (kept as ticks) need 8 bytes from the start */
    c->wide = type == LA_TYPE_INT || type == LA_TYPE_LONG || type == LA_TYPE_REAL ||
              type == LA_TYPE_DATETIME;
    luaL_setmetatable(L, COLUMN_MT);
    return c;
}

/***
 * A column of a result decoded with `shape = "columns"` (`tbl.values[j]`,
 * the same object as `tbl.columns[j].values`): the cells are kept in C and
 * a Lua value is made when a cell is read, typed as in rows.
 *
 *     local tbl = client:query(kql, { shape = "columns" }).tables[1]
 *     local times = tbl.values[1]
 *     for i = 1, #times do print(times[i]) end
 *
 * `col[i]` is cell i (`la.null` for a null), nil when `i` is not an
 * integer from 1 to `#col`; `#col` is the table's `row_count`. `pairs` and
 * `ipairs` go through the cells on Lua 5.2 and later (`__pairs`, `__ipairs`,
 * or `__index` for 5.4's `ipairs`); on Lua 5.1 and LuaJIT use
 * `for i = 1, #col` or `col:totable()`. A column holds its cells by itself:
 * it outlives the result, the client and the decoder.
 * @type column
 */

/***
 * A plain Lua array of the column's values (nulls as `la.null`).
 * @function column:totable
 * @treturn table
 */
static const luaL_Reg column_methods[] = {
    {"totable", column_totable},
    {NULL, NULL},
};

void la_columns_open(lua_State *L)
{
    la_register_class(L, COLUMN_MT, column_methods, column_close, column_tostring);
    luaL_getmetatable(L, COLUMN_MT);
    lua_getfield(L, -1, "__index");          /* the methods, or column_index when */
    if (!lua_istable(L, -1)) {               /* the module was opened before in this state */
        lua_pop(L, 2);
        return;
    }
    lua_pushcclosure(L, column_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, column_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, column_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, column_pairs);
    lua_setfield(L, -2, "__ipairs");
    lua_pop(L, 1);
}
