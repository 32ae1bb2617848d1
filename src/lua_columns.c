/*
 * A column of a result decoded with shape = "columns": the cells of one
 * column kept in C, compact and typed, and a Lua value made only when a
 * cell is read (col[i], col:totable()).
 *
 * Why: a full result in rows costs one Lua table per row and one interned
 * Lua string per string cell, and interning ~300k short strings in a big,
 * cold string table is where most of the time goes (issue 15's profile).
 * Here a cell is a kind byte and an 8-byte payload (a string's: a pointer
 * to its length and bytes, in blocks of the column's that never move, so
 * growing copies nothing), and a value repeated through the string cache's slots
 * (lua_decoder.c) is stored once and referred to again. Strings the slots
 * miss (longer ones, more distinct values than slots) are looked up in a
 * hash set of the column's own, kept while the column's values repeat.
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
    K_INTEGER,
    K_REAL,
    K_STRING,   /* at: the string's length (see keep_bytes), then its bytes */
    K_LUA,      /* the value at [position] of the user value table */
    K_GUID_LOWER, K_GUID_UPPER,  /* at: the guid's 16 bytes; its text in that case */
    K_DATETIME  /* ... K_DATETIME + 7: integer: ticks; the text had that many
                   fractional digits (la_datetime_parse's form) */
};
#define K_DATETIME_LAST (K_DATETIME + 7)

typedef union payload {
    long long integer;
    double real;
    const unsigned char *at;
} payload;

/* Cells in chunks of CHUNK (never moved: growing copies nothing). */
#define CHUNK_BITS 12
#define CHUNK ((size_t)1 << CHUNK_BITS)
typedef struct chunk {
    payload cells[CHUNK];
    unsigned char kinds[CHUNK];   /* enum cell_kind */
} chunk;

/* The strings' bytes, in blocks that never move (a cell points into them). */
typedef struct block {
    struct block *next;           /* the one made before */
    unsigned char data[];
} block;
#define BLOCK_FIRST (16 * 1024)
#define BLOCK_MAX (1024 * 1024)

/* The column's distinct strings, for storing a repeat once: open
 * addressing over their payloads (NULL: empty). A column whose first
 * DEDUPE_EARLY / 2 strings never repeat (ids, timestamps) drops it; after
 * that it is judged each time it must grow past DEDUPE_JUDGED slots, and
 * dropped when its repeats saved less than it costs. The judging starts
 * late: values drawn from a large pool repeat only after many rows. */
#define DEDUPE_EARLY 4096
#define DEDUPE_JUDGED (64 * 1024)
typedef struct dedupe {
    payload *slots;
    uint32_t *hashes;
    size_t cap, used;         /* cap: a power of 2, used <= cap / 2 */
    size_t saved;             /* bytes the repeats did not store again */
    int off;
} dedupe;

struct la_column {
    size_t n;                 /* cells */
    chunk **chunks;
    size_t nchunks, chunks_cap;
    block *blocks;            /* the newest first */
    unsigned char *free_at;   /* room left in the newest block */
    size_t free_left, next_block;
    dedupe seen;
    int lua_values;           /* the user value table exists (K_LUA cells) */
    la_type type;             /* LA_TYPE_DATETIME, LA_TYPE_GUID: kept by value */
};

#define KIND(c, i) ((c)->chunks[(i) >> CHUNK_BITS]->kinds[(i) & (CHUNK - 1)])
#define CELL(c, i) ((c)->chunks[(i) >> CHUNK_BITS]->cells[(i) & (CHUNK - 1)])

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
    c->chunks[c->nchunks++] = fresh;
    return 0;
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

/* A new block with room for need bytes at least; -1 when memory ran out. */
static int grow_blocks(la_column *c, size_t need)
{
    size_t size = c->next_block ? c->next_block : BLOCK_FIRST;
    block *b;
    if (need > size)
        size = need;  /* a long string: a block of its own size */
    else if (c->next_block < BLOCK_MAX)
        c->next_block = size * 2;
    b = malloc(sizeof *b + size);
    if (!b)
        return -1;
    b->next = c->blocks;
    c->blocks = b;
    c->free_at = b->data;
    c->free_left = size;
    return 0;
}

/* Copies a string into the blocks; -1 when memory ran out. */
static int keep_bytes(la_column *c, const char *s, size_t len, payload *out)
{
    size_t need = (len < 255 ? 1 : 5) + len;
    unsigned char *at;
    if (len > UINT32_MAX)
        return -1;
    if (need > c->free_left && grow_blocks(c, need) != 0)
        return -1;
    at = c->free_at;
    if (len < 255) {
        at[0] = (unsigned char)len;
        memcpy(at + 1, s, len);
    } else {
        uint32_t n = (uint32_t)len;
        at[0] = 255;
        memcpy(at + 1, &n, sizeof n);
        memcpy(at + 5, s, len);
    }
    c->free_at += need;
    c->free_left -= need;
    out->at = at;
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
    payload *slots = malloc(cap * sizeof *slots);
    uint32_t *hashes = malloc(cap * sizeof *hashes);
    if (!slots || !hashes) {
        free(slots);
        free(hashes);
        return -1;
    }
    for (i = 0; i < cap; i++)
        slots[i].at = NULL;
    for (i = 0; i < d->cap; i++) {
        if (!d->slots[i].at)
            continue;
        for (j = d->hashes[i] & (cap - 1); slots[j].at; j = (j + 1) & (cap - 1))
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

/* A string's payload: the one stored before when the column has it, else
 * its bytes kept now (and remembered). -1 when memory ran out. */
static int keep_string(la_column *c, const char *s, size_t len, payload *out)
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
    for (i = hash & (d->cap - 1); d->slots[i].at; i = (i + 1) & (d->cap - 1)) {
        size_t n;
        const unsigned char *bytes = string_of(d->slots[i].at, &n);
        if (d->hashes[i] == hash && n == len && memcmp(bytes, s, len) == 0) {
            d->saved += len;
            *out = d->slots[i];
            return 0;
        }
    }
    if (keep_bytes(c, s, len, out) != 0)
        return -1;
    d->slots[i] = *out;
    d->hashes[i] = hash;
    d->used++;
    return 0;
}

/* A datetime in the service's form, by its value: the kind says how many
 * fractional digits the text had (the parser reads fixed places, so the
 * ticks and that count give the same text back). 0 when kept so. */
static int keep_datetime(const char *s, size_t len, payload *p, unsigned char *kind)
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
static int keep_guid(la_column *c, const char *s, size_t len, payload *p, unsigned char *kind)
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
    if (c->free_left < sizeof bytes && grow_blocks(c, sizeof bytes) != 0)
        return -1;
    at = c->free_at;
    memcpy(at, bytes, sizeof bytes);
    c->free_at += sizeof bytes;
    c->free_left -= sizeof bytes;
    p->at = at;
    *kind = upper ? K_GUID_UPPER : K_GUID_LOWER;
    return 0;
}

int la_column_append(la_column *c, const la_cell *cell)
{
    payload *p;
    unsigned char *kind;
    if (reserve_cell(c) != 0)
        return -1;
    p = &CELL(c, c->n);
    kind = &KIND(c, c->n);
    switch (cell->kind) {
    case LA_CELL_BOOL:
        *kind = cell->boolean ? K_TRUE : K_FALSE;
        p->integer = 0;
        break;
    case LA_CELL_INTEGER:
        *kind = K_INTEGER;
        p->integer = cell->integer;
        break;
    case LA_CELL_REAL:
        *kind = K_REAL;
        p->real = cell->real;
        break;
    case LA_CELL_STRING:
        if (c->type == LA_TYPE_DATETIME && keep_datetime(cell->str, cell->len, p, kind) == 0)
            break;
        if (c->type == LA_TYPE_GUID) {
            int rc = keep_guid(c, cell->str, cell->len, p, kind);
            if (rc < 0)
                return -1;
            if (rc == 0)
                break;
        }
        if (keep_string(c, cell->str, cell->len, p) != 0)
            return -1;
        *kind = K_STRING;
        break;
    default:
        *kind = K_NULL;
        p->integer = 0;
        break;
    }
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
    if (kind != K_STRING && kind != K_GUID_LOWER && kind != K_GUID_UPPER &&
        !(kind >= K_DATETIME && kind <= K_DATETIME_LAST))
        return la_column_append_null(c);  /* cannot happen: the decoder names a string of its own */
    if (reserve_cell(c) != 0)
        return -1;
    KIND(c, c->n) = kind;
    CELL(c, c->n) = CELL(c, at - 1);
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
    CELL(c, c->n).integer = 0;
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
    const payload *p = &CELL(c, at - 1);
    unsigned char kind = KIND(c, at - 1);
    la_cell cell;
    size_t len;
    const unsigned char *bytes;
    switch (kind) {
    case K_STRING:
        bytes = string_of(p->at, &len);
        lua_pushlstring(L, (const char *)bytes, len);
        return;
    case K_LUA:
        la_getuservalue(L, 1);
        lua_rawgeti(L, -1, (int)at);
        lua_remove(L, -2);
        return;
    case K_GUID_LOWER: case K_GUID_UPPER:
        push_guid(L, p->at, kind == K_GUID_UPPER);
        return;
    default:
        if (kind >= K_DATETIME && kind <= K_DATETIME_LAST) {
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
    case K_INTEGER: cell.kind = LA_CELL_INTEGER; cell.integer = p->integer; break;
    case K_REAL: cell.kind = LA_CELL_REAL; cell.real = p->real; break;
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
    const unsigned char *recent_at[RECENT];
    size_t i;
    int recent;
    luaL_argcheck(L, c->n <= (size_t)INT_MAX, 1, "too many values for a Lua table");
    lua_settop(L, 1);
    lua_createtable(L, (int)c->n, 0);
    lua_createtable(L, RECENT, 0);
    recent = lua_gettop(L);
    for (i = 0; i < RECENT; i++)
        recent_at[i] = NULL;
    for (i = 1; i <= c->n; i++) {
        if (KIND(c, i - 1) == K_STRING) {
            const unsigned char *at = CELL(c, i - 1).at;
            unsigned h = (unsigned)(((uintptr_t)at ^ ((uintptr_t)at >> 9)) % RECENT);
            if (recent_at[h] == at) {
                lua_rawgeti(L, recent, (int)h + 1);
            } else {
                size_t len;
                const unsigned char *bytes = string_of(at, &len);
                lua_pushlstring(L, (const char *)bytes, len);
                lua_pushvalue(L, -1);
                lua_rawseti(L, recent, (int)h + 1);
                recent_at[h] = at;
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
    for (i = 0; i < c->nchunks; i++)
        free(c->chunks[i]);
    free(c->chunks);
    while (c->blocks) {
        block *next = c->blocks->next;
        free(c->blocks);
        c->blocks = next;
    }
    dedupe_drop(&c->seen);
    c->chunks = NULL;
    c->free_at = NULL;
    c->n = c->nchunks = c->chunks_cap = c->free_left = 0;
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
