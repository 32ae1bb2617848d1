/*
 * The decoder: response body bytes in, Lua values out, no socket of its own
 * ("sans-I/O"). Every transport uses it: the libcurl client (lua_client.c)
 * feeds it from libcurl's callbacks, the cosocket transport
 * (loganalytics.resty) from Lua strings, through core.decoder.
 *
 * Bytes go to the streaming parser (response_parser.c), whose events are
 * recorded on a tape (event_tape.c): parsing touches no Lua state, so the
 * client may parse on a worker thread (body_worker.c). Replaying the tape
 * makes the Lua values, on the caller's thread, under lua_pcall: a Lua
 * error (memory, an on_row handler's) never unwinds through C that does
 * not expect it (libcurl). The values under construction live in the
 * decoder's user value (a table, "the state"); a replay loads them into the
 * stack slots R_* of the protected call, and stores them back after.
 */
#include "lua_binding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stack slots of replay(); the state table keeps them between replays
 * under the same integer keys (R_RESULT on). */
enum {
    R_DECODER = 1,   /* the decoder's userdata */
    R_STATE,         /* its user value: the state table */
    R_RESULT,        /* the result table */
    R_TABLES,        /* result.tables */
    R_ONROW,         /* the on_row handler, or nil */
    R_TABLE,         /* the table being decoded */
    R_COLUMNS,       /* its columns */
    R_ROWS,          /* its rows */
    R_ROW,           /* the row being decoded */
    R_ROWMT,         /* the metatable shared by its rows */
    R_COLINDEX,      /* column name -> index, upvalue of the rows' __index */
    R_STRINGS,       /* the strings the string cache hands out, by slot */
    R_LIST,          /* take mode: the rows of this take(), with their tables */
    R_DATETIME_FN,   /* datetime = function: it, given each datetime's text */
    NREG = R_DATETIME_FN
};
/* Other keys of the state table (all in its array part, made at the
 * start: storing to them never allocates, so never raises) */
enum {
    S_ERROR = NREG + 1,  /* what a handler raised (false: nothing) */
    S_REPLAY,            /* replay(), pushed without allocating */
    NSTATE = S_REPLAY
};

enum phase { OPEN = 0, FINISHED, FAILED, CLOSED };

struct la_decoder {
    lua_State *L;            /* the thread of the current call */
    int idx;                 /* the decoder's stack slot in that call */
    la_parser *parser;
    la_tape *tape;           /* the parser's events, waiting for replay */
    la_gunzip *gunzip;       /* gzip = true */
    enum la_decoder_mode mode;
    la_value_options values; /* datetime, dynamic, shape */
    long batch;              /* rows per take(); 0: each feed makes them all */
    int pull;                /* a stepped reader wants rows a few at a time */
    int owned;               /* a client's: it frees the C parts */
    enum phase phase;
    la_parse_status parse_status;  /* written by on_body, on either thread */
    char message[200];       /* a failure not the parser's (gzip), or the
                                parser's kept when it is freed */
    int message_no_memory;   /* ... and it was memory running out */
    int stopped;             /* on_row returned false */
    int lua_failed;          /* a handler raised: the error is at S_ERROR */
    int lua_no_memory;       /* ... and it was memory running out */
    int paused;              /* the last replay stopped on its row budget */
    int replaying;           /* inside a replay: its on_row handler runs */
    long budget;             /* rows the current replay may still make; < 0: any */
    lua_Integer made;        /* rows made since la_decoder_begin_call */
    lua_Integer listed;      /* take mode: entries in R_LIST */
    lua_Integer ntables, nrows;
    size_t ncolumns;
    /* count mode: the rows of each table, counted as they are parsed
     * (the tape carries no row) */
    lua_Integer *counts;
    size_t ncounts, counts_cap;
    /* the current table's column types, by index (sink_column): how its
     * cells become values (datetime function, dynamic decode) */
    la_type *types;          /* (ncolumns of them) */
    size_t types_cap;
    int datetime_fn;         /* a datetime function is at R_DATETIME_FN */
    la_json *dynamic_json;   /* dynamic = "decode": the tokenizer, reused */
    int dynamic_base;        /* ... the stack slot of the text it decodes */
    /* shape = "columns": the current table's columns (lua_columns.c; the
     * table holds them), and where each string cache slot's string is
     * (its position in the slot's column, 0: none yet in this table) */
    la_column **columns;
    size_t columns_cap;
    size_t *slot_at;
    int sink_no_memory;      /* a sink's own allocation failed: the result fails as memory */
};

/* ------------------------------------------------------------ sinks */

/* Memory ran out in C a sink owns (not in Lua): raised under replay's
 * protected call; run_replay then fails the result as memory running out
 * (la_decoder_status: kind "memory"), never a short result, never a
 * handler's error. */
static int raise_no_memory(la_decoder *x)
{
    x->sink_no_memory = 1;
    snprintf(x->message, sizeof x->message, "not enough memory");
    x->message_no_memory = 1;
    lua_pushstring(x->L, x->message);
    return lua_error(x->L);
}

/* __index of rows: row.Computer -> row[index of "Computer"] */
static int row_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (lua_isnil(L, -1))
        return 1;
    lua_rawgeti(L, 1, (int)lua_tointeger(L, -1));
    return 1;
}

static int cell_needs_lua(const la_decoder *x, size_t index);
static void push_cell_value(la_decoder *x, size_t index, const la_cell *cell);

/* shape = "columns": the column userdata of column `index`, as
 * columns[index + 1].values (the table on top of the stack) and
 * values[index + 1]. */
static void add_column(la_decoder *x, size_t index, la_type type)
{
    lua_State *L = x->L;
    if (index >= x->columns_cap) {
        size_t cap = index + 16;
        la_column **grown = realloc(x->columns, cap * sizeof *grown);
        if (!grown)
            raise_no_memory(x);
        memset(grown + x->columns_cap, 0, (cap - x->columns_cap) * sizeof *grown);
        x->columns = grown;
        x->columns_cap = cap;
    }
    x->columns[index] = la_column_push(L, type);
    lua_pushvalue(L, -1);
    lua_rawseti(L, R_ROWS, (int)index + 1);
    lua_setfield(L, -2, "values");
}

/* shape = "columns": a cell to its column. A string the cache repeats is
 * stored once per column (la_column_append_repeat). */
static void column_cell(la_decoder *x, size_t index, const la_cell *cell)
{
    la_column *col;
    int rc;
    if (index >= x->ncolumns)
        return;  /* cannot happen: the parser refuses a row longer than its columns */
    col = x->columns[index];
    if (!col)
        return;  /* cannot happen: columns come in order, before the rows */
    if (cell->kind == LA_CELL_STRING && cell_needs_lua(x, index)) {
        /* made by Lua code (datetime function, dynamic decode): the value
         * is kept in the column's user value (R_ROWS: the table's values) */
        lua_rawgeti(x->L, R_ROWS, (int)index + 1);
        push_cell_value(x, index, cell);
        if (la_column_append_lua(x->L, -2, col) != 0)
            raise_no_memory(x);
        lua_pop(x->L, 1);
        return;
    }
    if (cell->slot && !x->slot_at) {
        x->slot_at = calloc((size_t)LA_STRING_CACHE_COLUMNS * LA_STRING_CACHE_PER_COLUMN,
                            sizeof *x->slot_at);
        if (!x->slot_at)
            raise_no_memory(x);
    }
    if (cell->slot) {
        size_t slot = (size_t)(cell->slot > 0 ? cell->slot : -cell->slot) - 1;
        if (slot >= (size_t)LA_STRING_CACHE_COLUMNS * LA_STRING_CACHE_PER_COLUMN ||
            slot / LA_STRING_CACHE_PER_COLUMN != index) {
            rc = la_column_append_null(col);  /* cannot happen: slots are per column */
        } else if (cell->slot > 0) {
            rc = la_column_append_repeat(col, x->slot_at[slot]);
        } else {
            rc = la_column_append(col, cell);
            if (rc == 0)
                x->slot_at[slot] = la_column_count(col);
        }
    } else {
        rc = la_column_append(col, cell);
    }
    if (rc != 0)
        raise_no_memory(x);
}

/* shape = "columns": a row ends; a column it gave no cell gets a null
 * (short rows padded, as rows are). */
static void column_row_end(la_decoder *x)
{
    size_t j, want = (size_t)x->nrows + 1;
    for (j = 0; j < x->ncolumns; j++)
        if (x->columns[j] && la_column_count(x->columns[j]) < want &&
            la_column_append_null(x->columns[j]) != 0)
            raise_no_memory(x);
}

static int sink_table_begin(void *ud)
{
    la_decoder *x = ud;
    lua_State *L = x->L;
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "name");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_replace(L, R_COLUMNS);
    lua_setfield(L, -2, "columns");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_replace(L, R_ROWS);
    /* shape = "columns": values instead of rows (R_ROWS holds them) */
    lua_setfield(L, -2, x->values.columns ? "values" : "rows");
    if (x->values.columns && x->slot_at)
        memset(x->slot_at, 0, LA_STRING_CACHE_COLUMNS * LA_STRING_CACHE_PER_COLUMN *
                              sizeof *x->slot_at);  /* slots are per table */
    lua_pushvalue(L, -1);
    lua_rawseti(L, R_TABLES, (int)++x->ntables);
    lua_replace(L, R_TABLE);

    lua_createtable(L, 0, 1);            /* the rows' metatable */
    lua_newtable(L);                     /* column index */
    lua_pushvalue(L, -1);
    lua_replace(L, R_COLINDEX);
    lua_pushcclosure(L, row_index, 1);
    lua_setfield(L, -2, "__index");
    lua_replace(L, R_ROWMT);
    lua_pushnil(L);                      /* strings of the last table */
    lua_replace(L, R_STRINGS);
    x->ncolumns = 0;
    x->nrows = 0;
    return 0;
}

static int sink_table_name(void *ud, const char *name, size_t len)
{
    la_decoder *x = ud;
    lua_pushlstring(x->L, name, len);
    lua_setfield(x->L, R_TABLE, "name");
    return 0;
}

static int sink_column(void *ud, size_t index, const char *name, size_t name_len,
                       const char *type, size_t type_len)
{
    la_decoder *x = ud;
    lua_State *L = x->L;
    if (index >= x->types_cap) {
        size_t cap = x->types_cap ? x->types_cap * 2 : 16;
        la_type *grown;
        while (cap <= index)
            cap *= 2;
        grown = realloc(x->types, cap * sizeof *grown);
        if (!grown)
            return raise_no_memory(x);
        x->types = grown;
        x->types_cap = cap;
    }
    x->types[index] = la_type_from_name(type, type_len);
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, name, name_len);
    lua_setfield(L, -2, "name");
    lua_pushlstring(L, type, type_len);
    lua_setfield(L, -2, "type");
    if (x->values.columns)
        add_column(x, index, x->types[index]);
    lua_rawseti(L, R_COLUMNS, (int)index + 1);
    lua_pushlstring(L, name, name_len);
    lua_pushinteger(L, (lua_Integer)index + 1);
    lua_rawset(L, R_COLINDEX);
    x->ncolumns = index + 1;
    return 0;
}

static int sink_row_begin(void *ud, size_t ncolumns)
{
    la_decoder *x = ud;
    lua_State *L = x->L;
    if (x->budget == 0) {
        x->paused = 1;
        return LA_SINK_PAUSE;  /* this row comes first at the next take */
    }
    if (x->values.columns)
        return 0;  /* no row table: cells go to their columns */
    lua_createtable(L, (int)ncolumns, 0);
    lua_pushvalue(L, R_ROWMT);
    lua_setmetatable(L, -2);
    lua_replace(L, R_ROW);
    return 0;
}

void la_push_cell(lua_State *L, const la_cell *cell)
{
    switch (cell->kind) {
    case LA_CELL_BOOL: lua_pushboolean(L, cell->boolean); break;
    case LA_CELL_INTEGER:
#if LUA_VERSION_NUM < 503
        /* no integer subtype: a double holds integers exactly up to 2^53;
         * beyond, the exact decimal text is kept as a string */
        if (cell->integer > 9007199254740992LL || cell->integer < -9007199254740992LL) {
            char digits[24];
            snprintf(digits, sizeof digits, "%lld", cell->integer);
            lua_pushstring(L, digits);
            break;
        }
#endif
        la_pushint64(L, cell->integer);
        break;
    case LA_CELL_REAL: lua_pushnumber(L, (lua_Number)cell->real); break;
    case LA_CELL_STRING: lua_pushlstring(L, cell->str, cell->len); break;
    default: lua_pushlightuserdata(L, NULL); break;
    }
}

/* A string cell that names a string cache slot (see la_cell): a repeated
 * value reuses the Lua string made the first time (string_cache.c says why). */
static void push_cached_string(lua_State *L, const la_cell *cell)
{
    if (cell->slot > 0) {
        lua_rawgeti(L, R_STRINGS, cell->slot);
        return;
    }
    lua_pushlstring(L, cell->str, cell->len);
    if (lua_isnil(L, R_STRINGS)) {
        lua_createtable(L, LA_STRING_CACHE_COLUMNS * LA_STRING_CACHE_PER_COLUMN, 0);
        lua_replace(L, R_STRINGS);
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, R_STRINGS, -cell->slot);
}

/* Non-zero when column index's non-null cells are made by Lua code (a
 * datetime function, dynamic decode) rather than straight from the cell. */
static int cell_needs_lua(const la_decoder *x, size_t index)
{
    if (index >= x->ncolumns)
        return 0;
    switch (x->types[index]) {
    case LA_TYPE_DATETIME: return x->datetime_fn;
    case LA_TYPE_DYNAMIC: return x->values.dynamic_decode;
    default: return 0;
    }
}

/* dynamic = "decode": a cell's JSON text becomes Lua values with the
 * core's tokenizer. The values under construction sit on the stack above
 * the text (at dynamic_base): a container, and above an object its key
 * while the key's value is made. A callback answers 0 to give up: the
 * text then stays a string. */
static int dyn_add(la_decoder *x)
{
    lua_State *L = x->L;
    int below = lua_gettop(L) - 1;
    if (below == x->dynamic_base)
        return 1;                        /* the whole value */
    if (lua_type(L, below) == LUA_TTABLE) {
        lua_rawseti(L, below, (int)lua_rawlen(L, below) + 1);  /* no holes: null is la.null */
    } else {
        lua_rawset(L, below - 1);        /* object[key] = value */
    }
    return 1;
}

static int dyn_null(void *ctx)
{
    la_decoder *x = ctx;
    lua_pushlightuserdata(x->L, NULL);
    return dyn_add(x);
}

static int dyn_boolean(void *ctx, int value)
{
    la_decoder *x = ctx;
    lua_pushboolean(x->L, value);
    return dyn_add(x);
}

static int dyn_number(void *ctx, const char *text, size_t len)
{
    la_decoder *x = ctx;
    la_cell cell;
    /* as a long column's: integers exact, others a float */
    if (la_cell_from_number(LA_TYPE_LONG, text, len, &cell) != 0)
        return raise_no_memory(x);
    la_push_cell(x->L, &cell);
    return dyn_add(x);
}

static int dyn_string(void *ctx, const unsigned char *text, size_t len)
{
    la_decoder *x = ctx;
    lua_pushlstring(x->L, (const char *)text, len);
    return dyn_add(x);
}

static int dyn_open(void *ctx)
{
    la_decoder *x = ctx;
    /* a container and its key; deeper than the stack allows: kept as text */
    if (!lua_checkstack(x->L, 4))
        return 0;
    lua_newtable(x->L);
    return 1;
}

static int dyn_key(void *ctx, const unsigned char *key, size_t len)
{
    la_decoder *x = ctx;
    lua_pushlstring(x->L, (const char *)key, len);
    return 1;
}

static int dyn_close(void *ctx)
{
    return dyn_add(ctx);
}

static const la_json_callbacks dynamic_callbacks = {
    dyn_null, dyn_boolean, dyn_number, dyn_string,
    dyn_open, dyn_key, dyn_close, dyn_open, dyn_close,
};

/* Replaces the string on top of the stack with its decoded value, or
 * leaves it when it is not one JSON value (or too deep). */
static void decode_dynamic(la_decoder *x)
{
    lua_State *L = x->L;
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    int ok;
    if (x->dynamic_json) {
        la_json_reset(x->dynamic_json);
    } else if (!(x->dynamic_json = la_json_new(&dynamic_callbacks, x))) {
        raise_no_memory(x);
        return;
    }
    x->dynamic_base = lua_gettop(L);
    ok = la_json_feed(x->dynamic_json, text, len) == 0 && la_json_finish(x->dynamic_json) == 0;
    if (!ok && la_json_out_of_memory(x->dynamic_json)) {
        lua_settop(L, x->dynamic_base);
        raise_no_memory(x);
        return;
    }
    if (ok && lua_gettop(L) == x->dynamic_base + 1)
        lua_replace(L, x->dynamic_base);
    else
        lua_settop(L, x->dynamic_base);
}

/* Pushes the Lua value of a cell of column index: from the string cache,
 * given to the datetime function, decoded (dynamic), or as it is. May
 * raise (it runs under replay's protected call). */
static void push_cell_value(la_decoder *x, size_t index, const la_cell *cell)
{
    lua_State *L = x->L;
    if (cell->slot)
        push_cached_string(L, cell);
    else
        la_push_cell(L, cell);
    if (cell->kind != LA_CELL_STRING || !cell_needs_lua(x, index))
        return;
    if (x->types[index] == LA_TYPE_DYNAMIC) {
        decode_dynamic(x);
        return;
    }
    /* the datetime function, given the text; nil becomes la.null (rows
     * have no holes); its error fails the query as on_row's does */
    lua_pushvalue(L, R_DATETIME_FN);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlightuserdata(L, NULL);
    }
}

static int sink_cell(void *ud, size_t index, const la_cell *cell)
{
    la_decoder *x = ud;
    if (x->values.columns) {
        column_cell(x, index, cell);
        return 0;
    }
    push_cell_value(x, index, cell);
    lua_rawseti(x->L, R_ROW, (int)index + 1);
    return 0;
}

static int sink_row_end(void *ud, size_t ncells)
{
    la_decoder *x = ud;
    lua_State *L = x->L;
    /* rows never have holes: a short row is padded with nulls */
    if (x->values.columns)
        column_row_end(x);
    else
        for (; ncells < x->ncolumns; ncells++) {
            lua_pushlightuserdata(L, NULL);
            lua_rawseti(L, R_ROW, (int)ncells + 1);
        }
    ++x->nrows;
    x->made++;
    if (x->budget > 0)
        x->budget--;
    if (x->values.columns)
        return 0;  /* a full result: the cells are in their columns */
    if (x->mode == LA_DECODE_CALL) {
        /* runs inside replay's protected call: an error in the handler
         * unwinds to run_replay, which keeps it */
        lua_pushvalue(L, R_ONROW);
        lua_pushvalue(L, R_ROW);
        lua_pushvalue(L, R_TABLE);
        lua_call(L, 2, 1);
        if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
            lua_pop(L, 1);
            lua_pushinteger(L, x->nrows);
            lua_setfield(L, R_TABLE, "row_count");
            lua_pushboolean(L, 1);
            lua_setfield(L, R_RESULT, "stopped");
            x->stopped = 1;
            return LA_SINK_STOP;
        }
        lua_pop(L, 1);
    } else if (x->mode == LA_DECODE_TAKE) {
        /* rows left when the body ends (no take() after the last feed)
         * have no list: they are counted, not kept */
        if (lua_istable(L, R_LIST)) {
            lua_pushvalue(L, R_ROW);
            lua_rawseti(L, R_LIST, (int)++x->listed);
            lua_pushvalue(L, R_TABLE);
            lua_rawseti(L, R_LIST, (int)++x->listed);
        }
    } else {
        lua_pushvalue(L, R_ROW);
        lua_rawseti(L, R_ROWS, (int)x->nrows);
    }
    lua_pushnil(L);
    lua_replace(L, R_ROW);
    return 0;
}

static int sink_table_end(void *ud)
{
    la_decoder *x = ud;
    if (x->mode == LA_DECODE_COUNT && x->ntables >= 1 && (size_t)x->ntables <= x->ncounts)
        x->nrows = x->counts[x->ntables - 1];
    if (x->values.columns) {
        size_t j;
        for (j = 0; j < x->ncolumns; j++)
            if (x->columns[j])
                la_column_done(x->columns[j]);
    }
    lua_pushinteger(x->L, x->nrows);
    lua_setfield(x->L, R_TABLE, "row_count");
    return 0;
}

static int member_is(const char *key, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(key, want, len) == 0;
}

/* A top-level member: only the service's own "error" (when not null),
 * "statistics" and "render" are taken; nothing the server sends may
 * overwrite the result's fields (status, stopped, request_id, ...). */
static int sink_member(void *ud, const char *key, size_t key_len, const char *json, size_t len)
{
    la_decoder *x = ud;
    lua_State *L = x->L;
    if (!member_is(key, key_len, "statistics") && !member_is(key, key_len, "render") &&
        !(member_is(key, key_len, "error") && !(len == 4 && memcmp(json, "null", 4) == 0)))
        return 0;
    lua_pushlstring(L, key, key_len);
    if (!la_push_json_value(L, json, len)) {
        lua_pushliteral(L, "not enough memory");
        return lua_error(L);
    }
    lua_rawset(L, R_RESULT);
    return 0;
}

static const la_result_sink lua_sink = {
    sink_table_begin, sink_table_name, sink_column, sink_row_begin,
    sink_cell, sink_row_end, sink_table_end, sink_member,
};

/* Count mode: between the parser and the tape. Rows are counted here and
 * never recorded; everything else goes on to the tape. */
static int count_table_begin(void *ud)
{
    la_decoder *d = ud;
    if (d->ncounts == d->counts_cap) {
        size_t cap = d->counts_cap ? d->counts_cap * 2 : 4;
        lua_Integer *grown = realloc(d->counts, cap * sizeof *grown);
        if (!grown)
            return LA_SINK_NO_MEMORY;
        d->counts = grown;
        d->counts_cap = cap;
    }
    d->counts[d->ncounts++] = 0;
    return la_tape_sink()->table_begin(d->tape);
}

static int count_table_name(void *ud, const char *name, size_t len)
{
    la_decoder *d = ud;
    return la_tape_sink()->table_name(d->tape, name, len);
}

static int count_column(void *ud, size_t index, const char *name, size_t name_len,
                        const char *type, size_t type_len)
{
    la_decoder *d = ud;
    return la_tape_sink()->column(d->tape, index, name, name_len, type, type_len);
}

static int count_row_begin(void *ud, size_t ncolumns)
{
    (void)ud; (void)ncolumns;
    return 0;
}

static int count_cell(void *ud, size_t index, const la_cell *cell)
{
    (void)ud; (void)index; (void)cell;
    return 0;
}

static int count_row_end(void *ud, size_t ncells)
{
    la_decoder *d = ud;
    (void)ncells;
    if (d->ncounts)
        d->counts[d->ncounts - 1]++;
    return 0;
}

static int count_table_end(void *ud)
{
    la_decoder *d = ud;
    return la_tape_sink()->table_end(d->tape);
}

static int count_member(void *ud, const char *key, size_t key_len, const char *json, size_t len)
{
    la_decoder *d = ud;
    return la_tape_sink()->member(d->tape, key, key_len, json, len);
}

static const la_result_sink count_sink = {
    count_table_begin, count_table_name, count_column, count_row_begin,
    count_cell, count_row_end, count_table_end, count_member,
};

/* ------------------------------------------------------------ replaying */

/* Under lua_pcall, the decoder as argument: the events handed over so far
 * become Lua values, within the row budget. */
static int replay(lua_State *L)
{
    la_decoder *d = lua_touserdata(L, R_DECODER);
    int i, rc;
    lua_settop(L, R_DECODER);
    luaL_checkstack(L, NREG + 16, "loganalytics: stack");
    la_getuservalue(L, R_DECODER);
    for (i = R_RESULT; i <= NREG; i++)
        lua_rawgeti(L, R_STATE, i);
    d->L = L;
    d->paused = 0;
    rc = la_tape_replay(d->tape, &lua_sink, d);
    (void)rc;  /* the sinks set stopped and paused */
    for (i = R_TABLE; i <= NREG; i++) {
        lua_pushvalue(L, i);
        lua_rawseti(L, R_STATE, i);
    }
    return 0;
}

/* Replays under lua_pcall. 0 to go on; -1 when a handler raised (the error
 * kept at S_ERROR) or stopped the rows. Raises nothing: the caller made
 * room on the stack (la_decoder_begin_call). */
static int run_replay(la_decoder *d)
{
    lua_State *L = d->L;
    int status;
    if (d->lua_failed || d->sink_no_memory || !d->tape)
        return -1;
    la_getuservalue(L, d->idx);
    lua_rawgeti(L, -1, S_REPLAY);
    lua_remove(L, -2);
    lua_pushvalue(L, d->idx);
    d->replaying = 1;
    status = lua_pcall(L, 1, 0, 0);
    d->replaying = 0;
    d->L = L;  /* replay set it to the same thread; said again for clarity */
    if (status != LUA_OK && d->sink_no_memory) {
        lua_pop(L, 1);  /* told as the result's failure (la_decoder_status) */
        return -1;
    }
    if (status != LUA_OK) {
        d->lua_no_memory = status == LUA_ERRMEM;
        la_decoder_fail(L, d->idx, d);
        return -1;
    }
    return d->stopped ? -1 : 0;
}

/* ------------------------------------------------------------ for transports */

void la_decoder_fail(lua_State *L, int idx, la_decoder *d)
{
    la_getuservalue(L, idx);
    lua_insert(L, -2);
    lua_rawseti(L, -2, S_ERROR);  /* a slot of the array part: no allocation */
    lua_pop(L, 1);
    d->lua_failed = 1;
}

int la_decoder_failed(const la_decoder *d)
{
    return d->lua_failed;
}

void la_decoder_push_error(lua_State *L, int idx)
{
    la_getuservalue(L, idx);
    lua_rawgeti(L, -1, S_ERROR);
    lua_remove(L, -2);
}

int la_decoder_stopped(const la_decoder *d)
{
    return d->stopped;
}

la_parse_status la_decoder_status(const la_decoder *d)
{
    if (d->parse_status == LA_PARSE_ERROR || d->sink_no_memory)
        return LA_PARSE_ERROR;
    return d->stopped ? LA_PARSE_STOPPED : d->parse_status;
}

const char *la_decoder_error(const la_decoder *d)
{
    if (d->message[0])
        return d->message;
    return d->parser ? la_parser_error(d->parser) : "the decoder is closed";
}

int la_decoder_out_of_memory(const la_decoder *d)
{
    if (d->sink_no_memory)
        return 1;
    if (d->parse_status != LA_PARSE_ERROR)
        return 0;
    if (d->message[0])
        return d->message_no_memory;
    return d->parser && la_parser_out_of_memory(d->parser);
}

void la_decoder_push_result(lua_State *L, int idx)
{
    la_getuservalue(L, idx);
    lua_rawgeti(L, -1, R_RESULT);
    lua_remove(L, -2);
}

void la_decoder_set_pull(la_decoder *d, int pull)
{
    d->pull = pull;
}

void la_decoder_begin_call(la_decoder *d, lua_State *L, int idx)
{
    /* room for run_replay's pushes, made now: later, in libcurl's
     * callbacks, nothing may raise */
    luaL_checkstack(L, 8, "loganalytics: stack");
    d->L = L;
    d->idx = lua_absindex(L, idx);
    d->made = 0;
}

void la_decoder_set_owned(la_decoder *d)
{
    d->owned = 1;
}

/* Body bytes, on the worker thread or the caller's: only the parser and
 * the tape are touched here, never Lua. */
int la_decoder_on_body(void *ud, const char *data, size_t len)
{
    la_decoder *d = ud;
    la_parse_status status = la_parser_feed(d->parser, data, len);
    if (la_tape_flush(d->tape) != 0 && status == LA_PARSE_OK)
        status = LA_PARSE_STOPPED;  /* cancelled */
    d->parse_status = status;
    return status == LA_PARSE_OK ? 0 : -1;
}

/* On the caller's thread: the events so far become Lua values. A pulling
 * reader that got rows in this step has enough: the rest waits. */
int la_decoder_progress(void *ud)
{
    la_decoder *d = ud;
    d->budget = -1;
    if (d->lua_failed || d->stopped || run_replay(d) != 0)
        return -1;
    return d->pull && d->made > 0 ? LA_PROGRESS_ENOUGH : 0;
}

void la_decoder_cancel(void *ud)
{
    la_decoder *d = ud;
    if (d->tape)
        la_tape_cancel(d->tape);
}

int la_decoder_end(lua_State *L, int idx, la_decoder *d)
{
    d->L = L;
    d->idx = lua_absindex(L, idx);
    if (d->lua_failed)
        return -1;
    if (d->stopped || d->sink_no_memory || !d->parser)
        return 0;
    if (d->parse_status == LA_PARSE_OK) {
        if (d->gunzip && !la_gunzip_done(d->gunzip)) {
            snprintf(d->message, sizeof d->message, "the gzip stream ended early");
            d->parse_status = LA_PARSE_ERROR;
        } else {
            /* the worker, if any, has ended before this */
            d->parse_status = la_parser_finish(d->parser);
            la_tape_flush(d->tape);
        }
    }
    if (d->parse_status == LA_PARSE_ERROR)
        return 0;
    d->budget = -1;
    return run_replay(d) != 0 && d->lua_failed ? -1 : 0;
}

void la_decoder_release(la_decoder *d)
{
    la_parser_free(d->parser);
    d->parser = NULL;
    la_tape_free(d->tape);
    d->tape = NULL;
    la_gunzip_free(d->gunzip);
    d->gunzip = NULL;
    free(d->counts);
    d->counts = NULL;
    d->ncounts = d->counts_cap = 0;
    free(d->types);
    d->types = NULL;
    d->types_cap = 0;
    la_json_free(d->dynamic_json);
    d->dynamic_json = NULL;
    free(d->columns);
    d->columns = NULL;
    d->columns_cap = 0;
    free(d->slot_at);
    d->slot_at = NULL;
}

la_decoder *la_decoder_push(lua_State *L, int gzip, enum la_decoder_mode mode, int on_row,
                            long batch, const la_value_options *values)
{
    static const la_value_options defaults;
    la_decoder *d;
    int i, datetime_fn = values && values->datetime_fn ? lua_absindex(L, values->datetime_fn) : 0;
    if (on_row)
        on_row = lua_absindex(L, on_row);
    luaL_checkstack(L, 6, "loganalytics: stack");
    d = la_newuserdata_uv(L, sizeof *d);
    memset(d, 0, sizeof *d);
    d->mode = mode;
    d->values = values ? *values : defaults;
    d->values.datetime_fn = 0;  /* kept in the state, at R_DATETIME_FN */
    d->datetime_fn = datetime_fn != 0;
    d->batch = batch;
    d->budget = -1;
    /* metatable first, so __gc frees whatever the next steps acquire */
    luaL_setmetatable(L, DECODER_MT);

    lua_createtable(L, NSTATE, 0);   /* the state: every key in the array part */
    for (i = 1; i <= NSTATE; i++) {
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, i);
    }
    lua_createtable(L, 0, 4);        /* the result */
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "tables");
    lua_rawseti(L, -3, R_TABLES);
    lua_rawseti(L, -2, R_RESULT);
    for (i = R_ONROW; i <= NREG; i++) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
    if (on_row) {
        lua_pushvalue(L, on_row);
        lua_rawseti(L, -2, R_ONROW);
    }
    if (datetime_fn) {
        lua_pushvalue(L, datetime_fn);
        lua_rawseti(L, -2, R_DATETIME_FN);
    }
    lua_pushcfunction(L, replay);
    lua_rawseti(L, -2, S_REPLAY);
    la_setuservalue(L, -2);

    d->tape = la_tape_new();
    if (mode == LA_DECODE_COUNT)
        d->parser = d->tape ? la_parser_new(&count_sink, d) : NULL;
    else
        d->parser = d->tape ? la_parser_new(la_tape_sink(), d->tape) : NULL;
    if (d->parser && !d->datetime_fn)
        la_parser_set_datetime(d->parser, d->values.datetime);
    if (gzip && d->parser)
        d->gunzip = la_gunzip_new();
    if (!d->parser || (gzip && !d->gunzip)) {
        la_decoder_release(d);
        luaL_error(L, "out of memory");
    }
    return d;
}

/* ------------------------------------------------------------ the Lua object */

/* Its on_row handler may not touch it: a nested replay would read the tape
 * the outer one is reading (and close would free it). */
static void check_not_replaying(lua_State *L, const la_decoder *d)
{
    if (d->replaying)
        luaL_error(L, "the decoder is busy: its on_row handler cannot feed, take, finish "
                      "or close it");
}

static la_decoder *check_decoder(lua_State *L)
{
    la_decoder *d = luaL_checkudata(L, 1, DECODER_MT);
    check_not_replaying(L, d);
    if (d->phase == CLOSED)
        luaL_error(L, "the decoder is closed");
    if (d->lua_failed && !d->lua_no_memory)
        luaL_error(L, "the decoder failed: its on_row handler raised an error");
    d->L = L;
    d->idx = 1;
    return d;
}

/* nil, { kind = "protocol"|"memory", message = ... } */
static int push_failure(lua_State *L, la_decoder *d)
{
    const char *kind = "protocol", *message;
    if (d->phase == FINISHED) {
        message = "the decoder has finished";
    } else if (d->lua_no_memory) {
        kind = "memory";
        message = "not enough memory";
    } else {
        if (la_decoder_out_of_memory(d))
            kind = "memory";
        message = la_decoder_error(d);
    }
    lua_pushnil(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    return 2;
}

/* After a replay's failure: a handler's error goes on (raised), memory
 * running out is told as nil, err. The C parts are freed either way. */
static int replay_failed(lua_State *L, la_decoder *d)
{
    d->phase = FAILED;
    la_decoder_release(d);
    if (d->lua_no_memory)
        return push_failure(L, d);
    la_decoder_push_error(L, 1);
    return lua_error(L);
}

/* The body is broken (or memory ran out): the error is kept, the C parts
 * freed; this and every later feed or finish give nil, err. */
static int parse_failed(lua_State *L, la_decoder *d)
{
    if (!d->message[0]) {
        d->message_no_memory = la_decoder_out_of_memory(d);  /* before: it reads message */
        snprintf(d->message, sizeof d->message, "%s", la_decoder_error(d));
    }
    d->phase = FAILED;
    la_decoder_release(d);
    return push_failure(L, d);
}

static int parse_bytes(la_decoder *d, const char *data, size_t len)
{
    if (!d->gunzip)
        return la_decoder_on_body(d, data, len);
    if (la_gunzip_done(d->gunzip))
        return 0;  /* bytes after the member are ignored, as libcurl does */
    if (la_gunzip_feed(d->gunzip, data, len, la_decoder_on_body, d) != 0 &&
        d->parse_status == LA_PARSE_OK) {
        int corrupt = la_gunzip_failed(d->gunzip);
        snprintf(d->message, sizeof d->message, "%s",
                 corrupt ? "the gzip data is corrupt" : "out of memory for the gzip decoder");
        d->message_no_memory = !corrupt;
        d->parse_status = LA_PARSE_ERROR;
    }
    return d->parse_status == LA_PARSE_OK ? 0 : -1;
}

/* dec:feed(bytes) -> true | nil, err */
static int decoder_feed(lua_State *L)
{
    la_decoder *d = check_decoder(L);
    size_t len;
    const char *data;
    /* bytes: a number is no body (luaL_checklstring would take it) */
    luaL_argcheck(L, lua_type(L, 2) == LUA_TSTRING, 2, "the bytes must be a string");
    data = lua_tolstring(L, 2, &len);
    if (d->phase != OPEN)
        return push_failure(L, d);
    if (!d->stopped) {
        la_decoder_begin_call(d, L, 1);
        if (parse_bytes(d, data, len) != 0)
            return parse_failed(L, d);
        if (d->batch == 0 && d->mode != LA_DECODE_TAKE) {
            d->budget = -1;
            if (run_replay(d) != 0 && d->lua_failed)
                return replay_failed(L, d);
            if (d->sink_no_memory)
                return parse_failed(L, d);
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* dec:take() -> n, more[, list] */
static int decoder_take(lua_State *L)
{
    la_decoder *d = check_decoder(L);
    int takes = d->mode == LA_DECODE_TAKE;
    lua_settop(L, 1);
    if (d->phase != OPEN || d->stopped || (d->batch == 0 && !takes)) {
        lua_pushinteger(L, 0);
        lua_pushboolean(L, 0);
        if (takes)
            lua_newtable(L);
        return takes ? 3 : 2;
    }
    la_decoder_begin_call(d, L, 1);
    if (takes) {
        lua_newtable(L);
        la_getuservalue(L, 1);
        lua_pushvalue(L, 2);
        lua_rawseti(L, -2, R_LIST);
        lua_pop(L, 1);
        d->listed = 0;
    }
    d->budget = d->batch > 0 ? d->batch : -1;
    if (run_replay(d) != 0 && d->lua_failed)
        return replay_failed(L, d);
    if (d->sink_no_memory)
        return parse_failed(L, d);
    if (takes) {
        la_getuservalue(L, 1);
        lua_pushnil(L);
        lua_rawseti(L, -2, R_LIST);
        lua_pop(L, 1);
    }
    lua_pushinteger(L, d->made);
    lua_pushboolean(L, d->paused && !d->stopped);
    if (takes)
        lua_pushvalue(L, 2);
    return takes ? 3 : 2;
}

/* dec:finish() -> result | nil, err */
static int decoder_finish(lua_State *L)
{
    la_decoder *d = check_decoder(L);
    if (d->phase != OPEN)
        return push_failure(L, d);
    la_decoder_begin_call(d, L, 1);
    if (la_decoder_end(L, 1, d) != 0)
        return replay_failed(L, d);
    if (d->parse_status == LA_PARSE_ERROR || d->sink_no_memory)
        return parse_failed(L, d);
    d->phase = FINISHED;
    la_decoder_release(d);
    la_decoder_push_result(L, 1);
    return 1;
}

/* dec:close() (and __gc): frees the C memory now; later calls raise. A
 * client's decoder is left to the client, which frees it once its
 * transfer (and any worker thread) has ended. */
static int decoder_close(lua_State *L)
{
    la_decoder *d = luaL_checkudata(L, 1, DECODER_MT);
    if (d->owned)
        return 0;  /* a client's: it frees it when its transfer ends */
    check_not_replaying(L, d);
    la_decoder_release(d);
    d->phase = CLOSED;
    return 0;
}

static int decoder_tostring(lua_State *L)
{
    la_decoder *d = luaL_checkudata(L, 1, DECODER_MT);
    static const char *const phases[] = {"", " finished", " failed", " closed"};
    lua_pushfstring(L, "loganalytics.decoder (%p)%s", (void *)d, phases[d->phase]);
    return 1;
}

/* Reads an option that must be a boolean or nil. */
static int opt_boolean(lua_State *L, const char *name)
{
    int v;
    lua_getfield(L, 1, name);
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
        lua_pushfstring(L, "field '%s' must be a boolean", name);
        luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* One of the strings names[] at field `name` of the table at idx, or nil
 * (0); raises naming the choices otherwise. */
static int opt_choice(lua_State *L, int idx, int arg, const char *name,
                      const char *const names[], const char *choices)
{
    int i;
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_type(L, -1) == LUA_TSTRING)
        for (i = 0; names[i]; i++)
            if (strcmp(lua_tostring(L, -1), names[i]) == 0) {
                lua_pop(L, 1);
                return i;
            }
    lua_pushfstring(L, "field '%s' must be %s", name, choices);
    luaL_argerror(L, arg, lua_tostring(L, -1));
    return 0;
}

void la_read_value_options(lua_State *L, int idx, int arg, la_value_options *out)
{
    /* in la_datetime_mode's order */
    static const char *const datetimes[] = {"string", "epoch", "epoch_ms", "ticks", NULL};
    static const char *const dynamics[] = {"text", "decode", NULL};
    static const char *const shapes[] = {"rows", "columns", NULL};
    idx = lua_absindex(L, idx);
    memset(out, 0, sizeof *out);
    lua_getfield(L, idx, "datetime");
    if (lua_isfunction(L, -1)) {
        out->datetime_fn = lua_gettop(L);  /* left on the stack */
    } else {
        lua_pop(L, 1);
        out->datetime = (la_datetime_mode)opt_choice(
            L, idx, arg, "datetime", datetimes,
            "\"string\", \"epoch\", \"epoch_ms\", \"ticks\" or a function");
#if LUA_VERSION_NUM < 503
        if (out->datetime == LA_DATETIME_TICKS)
            luaL_argerror(L, arg, "field 'datetime' = \"ticks\" needs Lua 5.3 or later "
                                  "(64-bit integers)");
#endif
    }
    out->dynamic_decode = opt_choice(L, idx, arg, "dynamic", dynamics,
                                     "\"text\" or \"decode\"");
    out->columns = opt_choice(L, idx, arg, "shape", shapes, "\"rows\" or \"columns\"");
}

/***
 * A decoder: the bytes of a query response body in, the result out, with no
 * socket of its own (internal API of `loganalytics.core`; its user is
 * lua/loganalytics/resty.lua, the cosocket transport; the libcurl client
 * uses the same code). The result, its typing, string cache and errors are
 * those of `client:perform`'s `response.result`.
 *
 *     local dec = core.decoder { gzip = true, take = true, batch = 500 }
 *     for chunk in body_chunks do
 *       assert(dec:feed(chunk))
 *       repeat
 *         local n, more, list = dec:take()   -- list = { row1, tbl1, row2, tbl2, ... }
 *         ...                                 -- handle the rows; may yield here
 *       until not more
 *     end
 *     local result, err = dec:finish()
 *
 * @function core.decoder
 * @tparam table options
 * @tparam[opt] boolean options.gzip the bytes are one gzip member (bytes after
 *   it are ignored); otherwise the JSON body itself. Bytes may be split anywhere.
 * @tparam[opt] function options.on_row `f(row, tbl)`, called from C for each
 *   row (rows are then not kept in the result; a C call, so it cannot yield
 *   on LuaJIT); returning `false` stops: later feeds are ignored and `finish`
 *   gives the result with `stopped = true`. An error it raises propagates
 *   out of `feed`/`take`/`finish`; the decoder then raises at every call.
 * @tparam[opt] boolean options.take rows are neither kept nor called:
 *   `take()` returns them (not with `on_row`). `feed` then only parses.
 * @tparam[opt] boolean options.count_only rows are parsed and counted in C,
 *   and no Lua value is made for them (checking a stored body fast, before
 *   handing its rows over): `finish` gives each table's `name`, `columns`
 *   and `row_count` with `rows` empty, and the top-level members (`error`,
 *   `statistics`, `render`) as usual. Not with `on_row` or `take`.
 * @tparam[opt] string options.shape `"columns"`: each table of the result gets
 *   `values[j]` (also `columns[j].values`), a column object (lua_columns.c),
 *   instead of `rows`, as `client:query`'s option; not with `on_row`, `take`
 *   or `count_only` (a batch is fine: `take()` then fills the columns).
 * @tparam[opt] integer options.batch N >= 1: `feed` only parses (records the
 *   events in C, makes no Lua value); each `take()` turns at most N pending
 *   rows into Lua values (kept, given to `on_row` or listed), so no stretch
 *   of Lua work is longer than N rows. Without it, `feed` makes every row it
 *   parsed (keep and on_row modes) and `take()` returns `0, false`.
 * @tparam[opt] string|function options.datetime datetime cells: "string"
 *   (default), "epoch", "epoch_ms", "ticks" (Lua 5.3+) or a function given the
 *   text, as `la.new`'s option of that name (the C modes convert as the body is
 *   parsed, on whichever thread parses it; a function runs as rows are made)
 * @tparam[opt] string options.dynamic dynamic cells: "text" (default) or
 *   "decode" (Lua tables made with the core's tokenizer, as `la.new` says)
 * @treturn decoder raises on misuse (wrong option types) or when memory ran out
 */

/***
 * Feeds the next bytes of the body.
 * @function decoder:feed
 * @tparam string bytes
 * @return `true`, or `nil, err` with `err.kind` "protocol" (malformed JSON,
 *   broken gzip; `err.message` is the parser's) or "memory"; the same after a
 *   failure, and `nil, err` ("the decoder has finished") after `finish`.
 */

/***
 * Turns pending rows into Lua values (batch or take mode).
 * @function decoder:take
 * @treturn integer n the rows made by this call (at most `batch`)
 * @treturn boolean more parsed rows are still pending: call again
 * @treturn[opt] table list take mode only: `{ row1, tbl1, row2, tbl2, ... }`.
 *   In take mode, rows still pending at `finish` are counted (`row_count`)
 *   but given to no one: take until `more` is false first.
 */

/***
 * The end of the body: checks the JSON (and the gzip member) is complete,
 * makes whatever is still pending, and frees the C memory.
 * @function decoder:finish
 * @return the result (`tables` with `name`, `columns` `{name, type}`, `rows`
 *   (by index or `row.ColumnName`), `row_count`; `statistics`, `render`,
 *   `error` as sent; `stopped = true` when `on_row` stopped), or `nil, err`
 *   as `feed` gives it ("the response ended before its JSON was complete",
 *   "the gzip stream ended early").
 */

/***
 * Frees the C memory now (also done by `__gc` and `__close`); idempotent.
 * Later `feed`, `take` or `finish` raise "the decoder is closed".
 * @function decoder:close
 */
static int decoder_new(lua_State *L)
{
    enum la_decoder_mode mode = LA_DECODE_KEEP;
    la_value_options values;
    long batch = 0;
    int gzip, takes, counts, on_row = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    la_read_value_options(L, 1, 1, &values);
    gzip = opt_boolean(L, "gzip");
    takes = opt_boolean(L, "take");
    counts = opt_boolean(L, "count_only");
    if (counts && takes)
        return luaL_argerror(L, 1, "fields 'count_only' and 'take' exclude each other");
    lua_getfield(L, 1, "on_row");
    if (!lua_isnil(L, -1)) {
        if (!lua_isfunction(L, -1))
            return luaL_argerror(L, 1, "field 'on_row' must be a function");
        if (takes)
            return luaL_argerror(L, 1, "fields 'on_row' and 'take' exclude each other");
        if (counts)
            return luaL_argerror(L, 1, "fields 'on_row' and 'count_only' exclude each other");
        mode = LA_DECODE_CALL;
        on_row = lua_gettop(L);
    }
    if (takes)
        mode = LA_DECODE_TAKE;
    if (counts)
        mode = LA_DECODE_COUNT;
    if (values.columns && mode != LA_DECODE_KEEP)
        return luaL_argerror(L, 1, "field 'shape' = \"columns\" is for a full result: "
                                   "not with 'on_row', 'take' or 'count_only'");
    lua_getfield(L, 1, "batch");
    if (!lua_isnil(L, -1)) {
        lua_Number n = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= 1e9) || n != (lua_Number)(long)n)
            return luaL_argerror(L, 1, "field 'batch' must be a whole number from 1 to 1e9");
        batch = (long)n;
    }
    lua_pop(L, 1);
    la_decoder_push(L, gzip, mode, on_row, batch, &values);
    return 1;
}

static const luaL_Reg decoder_methods[] = {
    {"feed", decoder_feed},
    {"take", decoder_take},
    {"finish", decoder_finish},
    {"close", decoder_close},
    {NULL, NULL},
};

void la_decoder_open(lua_State *L)
{
    la_register_class(L, DECODER_MT, decoder_methods, decoder_close, decoder_tostring);
    lua_pushcfunction(L, decoder_new);
    lua_setfield(L, -2, "decoder");
}
