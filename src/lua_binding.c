/*
 * loganalytics.core: the one file that knows Lua. It drives the C core
 * (la_core.h) and turns the streaming parser's events into Lua values.
 *
 * The parser records its events on a tape (event_tape.c), on a worker
 * thread when the body is large (body_worker.c); the events are replayed
 * into Lua values on the caller's thread. Lua errors (memory errors, or an
 * on_row handler's) never unwind through libcurl: each replay runs inside
 * lua_pcall from libcurl's callbacks, and an error is re-raised only after
 * the transfer has ended. The values under construction survive between
 * replays as "registers": stack slots of query_perform, passed to and
 * returned from every protected call.
 */
#include "la_core.h"
#include "compat.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLIENT_MT "loganalytics.client"
#define JSON_BOX_MT "loganalytics.json_box"

/* ------------------------------------------------------------ JSON (cJSON) */

/* Holds cJSON-owned memory while Lua works, so an error frees it in __gc. */
typedef struct json_box {
    cJSON *tree;
    char *text;
} json_box;

static int json_box_gc(lua_State *L)
{
    json_box *b = luaL_checkudata(L, 1, JSON_BOX_MT);
    cJSON_Delete(b->tree);
    cJSON_free(b->text);
    b->tree = NULL;
    b->text = NULL;
    return 0;
}

static json_box *new_json_box(lua_State *L)
{
    json_box *b = lua_newuserdata(L, sizeof *b);
    b->tree = NULL;
    b->text = NULL;
    luaL_setmetatable(L, JSON_BOX_MT);
    return b;
}

static void push_cjson(lua_State *L, const cJSON *item)
{
    const cJSON *child;
    lua_Integer i = 0;
    luaL_checkstack(L, 3, "JSON nested too deeply");
    if (cJSON_IsObject(item)) {
        lua_newtable(L);
        for (child = item->child; child; child = child->next) {
            push_cjson(L, child);
            lua_setfield(L, -2, child->string);
        }
    } else if (cJSON_IsArray(item)) {
        lua_createtable(L, cJSON_GetArraySize(item), 0);
        for (child = item->child; child; child = child->next) {
            push_cjson(L, child);
            lua_rawseti(L, -2, (int)++i);
        }
    } else if (cJSON_IsString(item)) {
        lua_pushstring(L, item->valuestring);
    } else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        /* counts and positions read better as integers (range first: a
         * cast of 1e300 to an integer is undefined) */
        if (d > -9007199254740992.0 && d < 9007199254740992.0 && d == (double)(long long)d)
            la_pushint64(L, (long long)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsTrue(item)) {
        lua_pushboolean(L, 1);
    } else if (cJSON_IsFalse(item)) {
        lua_pushboolean(L, 0);
    } else {
        lua_pushlightuserdata(L, NULL);
    }
}

/* Pushes the decoded value and returns 1, or pushes nothing and returns 0. */
static int push_json_text(lua_State *L, const char *text, size_t len)
{
    json_box *box = new_json_box(L);
    const char *end = NULL;
    box->tree = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    /* one value and nothing after it but blanks: `{...} trailing` is no JSON
     * document (cJSON stops at the value's end and says nothing) */
    while (box->tree && end && end < text + len &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (box->tree && (!end || end != text + len)) {
        cJSON_Delete(box->tree);
        box->tree = NULL;
    }
    if (!box->tree) {
        lua_pop(L, 1);
        return 0;
    }
    push_cjson(L, box->tree);
    cJSON_Delete(box->tree);
    box->tree = NULL;
    lua_remove(L, -2);
    return 1;
}

/* core.decode_json(text) -> value | nil, err */
static int decode_json(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    if (push_json_text(L, text, len))
        return 1;
    lua_pushnil(L);
    lua_pushliteral(L, "invalid JSON");
    return 2;
}

/* core.query_body(query, timespan|nil, workspaces|nil) -> JSON text */
static int query_body(lua_State *L)
{
    const char *query = luaL_checkstring(L, 1);
    const char *timespan = luaL_optstring(L, 2, NULL);
    const char **workspaces = NULL;
    size_t i, n = 0;
    json_box *box;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        n = lua_rawlen(L, 3);
        workspaces = lua_newuserdata(L, (n ? n : 1) * sizeof *workspaces);
        for (i = 0; i < n; i++) {
            lua_rawgeti(L, 3, (int)i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_argerror(L, 3, "workspaces must be strings");
            workspaces[i] = lua_tostring(L, -1);  /* kept alive by the table */
            lua_pop(L, 1);
        }
    }
    box = new_json_box(L);
    box->text = la_query_body(query, timespan, workspaces, n);
    if (!box->text)
        return luaL_error(L, "out of memory building the request body");
    lua_pushstring(L, box->text);
    cJSON_free(box->text);
    box->text = NULL;
    return 1;
}

/* ------------------------------------------------------------ registers */

/* Stack slots inside feed(); in query_perform they sit at base + R_*. */
enum {
    R_CTX = 1,       /* light userdata: the feed_ctx */
    R_RESULT,        /* the result table */
    R_TABLES,        /* result.tables */
    R_TABLE,         /* the table being parsed */
    R_COLUMNS,       /* its columns */
    R_ROWS,          /* its rows */
    R_ROW,           /* the row being parsed */
    R_ROWMT,         /* the metatable shared by its rows */
    R_COLINDEX,      /* column name -> index, upvalue of the rows' __index */
    R_STRINGS,       /* the strings the string cache hands out, by slot */
    R_ONROW,         /* the on_row handler, or nil: rows are then kept */
    NREG = R_ONROW
};

typedef struct feed_ctx {
    lua_State *L;
    int base;                /* slot of the feed function; registers follow */
    la_parser *parser;
    la_tape *tape;           /* the parser's events, waiting for replay */
    int finishing;
    la_parse_status parse_status;  /* written by on_body, on either thread */
    int replay_stopped;      /* the Lua sink said stop (on_row returned false) */
    int lua_failed;          /* the error value sits in slot base + NREG + 1 */
    int streaming;           /* rows go to the on_row handler, not to rows */
    int pull;                /* a stepped reader (client:rows) that wants rows a few at a time */
    lua_Integer rows_this_step;
    lua_Integer ntables, nrows;
    size_t ncolumns;
} feed_ctx;

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

static int sink_table_begin(void *ud)
{
    feed_ctx *x = ud;
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
    lua_setfield(L, -2, "rows");
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
    feed_ctx *x = ud;
    lua_pushlstring(x->L, name, len);
    lua_setfield(x->L, R_TABLE, "name");
    return 0;
}

static int sink_column(void *ud, size_t index, const char *name, size_t name_len,
                       const char *type, size_t type_len)
{
    feed_ctx *x = ud;
    lua_State *L = x->L;
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, name, name_len);
    lua_setfield(L, -2, "name");
    lua_pushlstring(L, type, type_len);
    lua_setfield(L, -2, "type");
    lua_rawseti(L, R_COLUMNS, (int)index + 1);
    lua_pushlstring(L, name, name_len);
    lua_pushinteger(L, (lua_Integer)index + 1);
    lua_rawset(L, R_COLINDEX);
    x->ncolumns = index + 1;
    return 0;
}

static int sink_row_begin(void *ud, size_t ncolumns)
{
    feed_ctx *x = ud;
    lua_State *L = x->L;
    lua_createtable(L, (int)ncolumns, 0);
    lua_pushvalue(L, R_ROWMT);
    lua_setmetatable(L, -2);
    lua_replace(L, R_ROW);
    return 0;
}

static void push_cell(lua_State *L, const la_cell *cell)
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

static int sink_cell(void *ud, size_t index, const la_cell *cell)
{
    feed_ctx *x = ud;
    if (cell->slot)
        push_cached_string(x->L, cell);
    else
        push_cell(x->L, cell);
    lua_rawseti(x->L, R_ROW, (int)index + 1);
    return 0;
}

static int sink_row_end(void *ud, size_t ncells)
{
    feed_ctx *x = ud;
    lua_State *L = x->L;
    /* rows never have holes: a short row is padded with nulls */
    for (; ncells < x->ncolumns; ncells++) {
        lua_pushlightuserdata(L, NULL);
        lua_rawseti(L, R_ROW, (int)ncells + 1);
    }
    ++x->nrows;
    if (x->streaming) {
        x->rows_this_step++;
        /* runs inside feed's protected call: an error in the handler
         * unwinds to run_feed, which aborts the transfer */
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
            return LA_SINK_STOP;
        }
        lua_pop(L, 1);
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
    feed_ctx *x = ud;
    lua_pushinteger(x->L, x->nrows);
    lua_setfield(x->L, R_TABLE, "row_count");
    return 0;
}

/* The deepest nesting of brackets in JSON text (strings skipped). */
static size_t json_depth(const char *json, size_t len)
{
    size_t i, depth = 0, deepest = 0;
    int in_string = 0;
    for (i = 0; i < len; i++) {
        char c = json[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest)
                deepest = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return deepest;
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
    feed_ctx *x = ud;
    lua_State *L = x->L;
    if (!member_is(key, key_len, "statistics") && !member_is(key, key_len, "render") &&
        !(member_is(key, key_len, "error") && !(len == 4 && memcmp(json, "null", 4) == 0)))
        return 0;
    lua_pushlstring(L, key, key_len);
    if (!push_json_text(L, json, len)) {
        /* the text is the parser's own valid JSON: cJSON refused it for
         * its depth, or for want of memory */
        if (json_depth(json, len) <= CJSON_NESTING_LIMIT) {
            lua_pushliteral(L, "not enough memory");
            return lua_error(L);
        }
        lua_pushlstring(L, json, len);  /* deeper than cJSON reads: keep the text */
    }
    lua_rawset(L, R_RESULT);
    return 0;
}

static const la_result_sink lua_sink = {
    sink_table_begin, sink_table_name, sink_column, sink_row_begin,
    sink_cell, sink_row_end, sink_table_end, sink_member,
};

/* Runs under lua_pcall with the registers as arguments; returns them. */
static int feed(lua_State *L)
{
    feed_ctx *x = lua_touserdata(L, R_CTX);
    x->L = L;
    /* the worker, if any, has ended before the finish */
    if (x->finishing) {
        x->parse_status = la_parser_finish(x->parser);
        la_tape_flush(x->tape);
    }
    if (la_tape_replay(x->tape, &lua_sink, x) != 0)
        x->replay_stopped = 1;
    lua_settop(L, NREG);
    return NREG;
}

/* Replays the events recorded so far (after finishing the parse, when
 * finishing) under lua_pcall. Returns 0 to go on. Nothing here raises: the
 * stack was sized beforehand. */
static int run_feed(feed_ctx *x, int finishing)
{
    lua_State *L = x->L;
    int i;
    x->finishing = finishing;
    lua_pushvalue(L, x->base);
    for (i = 1; i <= NREG; i++)
        lua_pushvalue(L, x->base + i);
    if (lua_pcall(L, NREG, NREG, 0) != LUA_OK) {
        lua_replace(L, x->base + NREG + 1);
        x->lua_failed = 1;
        return -1;
    }
    for (i = NREG; i >= 1; i--)
        lua_replace(L, x->base + i);
    return x->replay_stopped ? -1 : 0;
}

/* Body bytes, on the worker thread or the caller's: only the parser and
 * the tape are touched here, never Lua. */
static int on_body(void *ud, const char *data, size_t len)
{
    feed_ctx *x = ud;
    la_parse_status status = la_parser_feed(x->parser, data, len);
    if (la_tape_flush(x->tape) != 0 && status == LA_PARSE_OK)
        status = LA_PARSE_STOPPED;  /* cancelled */
    x->parse_status = status;
    return status == LA_PARSE_OK ? 0 : -1;
}

/* On the caller's thread: the events so far become Lua values. A pulling
 * reader that got rows in this step has enough: the rest waits. */
static int on_progress(void *ud)
{
    feed_ctx *x = ud;
    if (x->lua_failed || x->replay_stopped || run_feed(x, 0) != 0)
        return -1;
    return x->pull && x->rows_this_step > 0 ? LA_PROGRESS_ENOUGH : 0;
}

static void on_cancel(void *ud)
{
    feed_ctx *x = ud;
    la_tape_cancel(x->tape);
}

/* ------------------------------------------------------------ client */

typedef struct client {
    la_http *http;
    la_parser *parser;
    la_tape *tape;
    la_http_response response;
    feed_ctx feed;           /* lives here: a stepped transfer outlasts a call */
    int busy;                /* inside perform or step */
    int registers;           /* registry ref of the saved registers, between steps */
} client;

static client *check_client(lua_State *L)
{
    return luaL_checkudata(L, 1, CLIENT_MT);
}

/* Drops a stepped transfer under way, if any. */
static void drop_transfer(lua_State *L, client *c)
{
    if (c->http)
        la_http_cancel(c->http);
    la_parser_free(c->parser);
    c->parser = NULL;
    la_tape_free(c->tape);
    c->tape = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, c->registers);
    c->registers = LUA_NOREF;
}

static int client_close(lua_State *L)
{
    client *c = check_client(L);
    if (c->busy)
        return luaL_error(L, "cannot close a client while it runs a query");
    drop_transfer(L, c);
    la_http_free(c->http);
    c->http = NULL;
    la_http_response_free(&c->response);
    return 0;
}

static int client_tostring(lua_State *L)
{
    client *c = check_client(L);
    lua_pushfstring(L, "loganalytics.client (%p)%s", (void *)c, c->http ? "" : " closed");
    return 1;
}

/* core.new() -> client */
static int client_new(lua_State *L)
{
    client *c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    c->registers = LUA_NOREF;
    la_http_response_init(&c->response);
    /* metatable first, so __gc frees whatever the next steps acquire */
    luaL_setmetatable(L, CLIENT_MT);
    c->http = la_http_new();
    if (!c->http)
        return luaL_error(L, "cannot create a libcurl handle");
    return 1;
}

static const char *opt_string_field(lua_State *L, int t, const char *name, size_t *len)
{
    const char *s;
    lua_getfield(L, t, name);  /* left on the stack: keeps the string alive */
    if (lua_isnil(L, -1))
        return NULL;
    /* the type first: lua_tolstring would turn a number into a string */
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "field '%s' must be a string, got %s", name, luaL_typename(L, -1));
    s = lua_tolstring(L, -1, len);
    return s;
}

/* Longer than any transfer needs: "never", and within a 32-bit long. */
#define MAX_MS 2147483647.0

static long opt_ms_field(lua_State *L, int t, const char *name)
{
    lua_Number seconds, ms;
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "field '%s' must be a number of seconds, got %s", name, luaL_typename(L, -1));
    seconds = lua_isnil(L, -1) ? 0 : lua_tonumber(L, -1);
    lua_pop(L, 1);
    ms = seconds * 1000 + 0.5;
    if (!(ms >= 1))  /* 0, negative, NaN: none */
        return 0;
    return ms < MAX_MS ? (long)ms : (long)MAX_MS;  /* range first: the cast of 1e300 is undefined */
}

/* Response headers as { ["lower-case-name"] = value }, repeats joined by ", ". */
static void push_headers(lua_State *L, const la_buf *raw)
{
    const char *p = raw->data ? raw->data : "", *end = p + raw->len;
    lua_newtable(L);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end, *colon, *v;
        const char *next = eol ? eol + 1 : end;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon && memcmp(p, "HTTP/", 5) != 0) {
            luaL_Buffer name;
            const char *k;
            luaL_buffinit(L, &name);
            for (k = p; k < colon; k++)
                luaL_addchar(&name, (char)((*k >= 'A' && *k <= 'Z') ? *k + 32 : *k));
            luaL_pushresult(&name);
            for (v = colon + 1; v < line_end && (*v == ' ' || *v == '\t'); v++)
                ;
            lua_pushvalue(L, -1);
            lua_rawget(L, -3);
            if (lua_isstring(L, -1)) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(line_end - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(line_end - v));
            }
            lua_rawset(L, -3);
        }
        p = next;
    }
}

/* Reads the request table at index 2 into req; its strings stay on the
 * stack (libcurl copies what it keeps when the transfer starts). */
static void read_request(lua_State *L, la_http_request *req)
{
    const char **headers = NULL;
    size_t i, nheaders = 0;
    memset(req, 0, sizeof *req);
    req->url = opt_string_field(L, 2, "url", NULL);
    if (!req->url)
        luaL_error(L, "request field 'url' is required");
    req->body = opt_string_field(L, 2, "body", &req->body_len);
    if (!req->body)
        req->body = "";
    req->username = opt_string_field(L, 2, "username", NULL);
    req->password = opt_string_field(L, 2, "password", NULL);
    req->user_agent = opt_string_field(L, 2, "user_agent", NULL);
    req->connect_timeout_ms = opt_ms_field(L, 2, "connect_timeout");
    req->timeout_ms = opt_ms_field(L, 2, "timeout");
    req->stall_timeout_ms = opt_ms_field(L, 2, "stall_timeout");
    req->ca_file = opt_string_field(L, 2, "ca_file", NULL);
    req->ca_path = opt_string_field(L, 2, "ca_path", NULL);
    req->proxy = opt_string_field(L, 2, "proxy", NULL);
    lua_getfield(L, 2, "insecure");
    req->insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "allow_http");
    req->allow_http = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "threads");
    req->no_worker = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "headers");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            luaL_argerror(L, 2, "field 'headers' must be a table of strings");
        nheaders = lua_rawlen(L, -1);
        headers = lua_newuserdata(L, (nheaders ? nheaders : 1) * sizeof *headers);
        for (i = 0; i < nheaders; i++) {
            lua_rawgeti(L, -2, (int)i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, 2, "field 'headers' must be a table of strings");
            headers[i] = lua_tostring(L, -1);  /* kept alive by the table */
            lua_pop(L, 1);
        }
    }
    req->headers = headers;
    req->nheaders = nheaders;
}

/* Checks the client, reads the request and pushes the registers (feed
 * function, registers, error slot); returns their base slot. */
static int begin_transfer(lua_State *L, client *c, la_http_request *req)
{
    int base, i;
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!c->http)
        luaL_error(L, "client is closed");
    /* one transfer per client: a call from inside a transfer's callback, or
     * while a stepped transfer is parked (a rows() loop, a query yielding
     * from on_progress), must not take the handle from under it */
    if (c->busy || c->registers != LUA_NOREF)
        luaL_error(L, "loganalytics.client (%p) is busy with another transfer", (void *)c);
    read_request(L, req);

    /* the registers, and room for run_feed's pushes */
    luaL_checkstack(L, 2 * NREG + 8, "loganalytics: stack");
    base = lua_gettop(L) + 1;
    lua_pushcfunction(L, feed);
    lua_pushlightuserdata(L, &c->feed);
    lua_createtable(L, 0, 4);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "tables");
    for (i = R_TABLE; i < R_ONROW; i++)
        lua_pushnil(L);
    lua_getfield(L, 2, "on_row");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        luaL_argerror(L, 2, "field 'on_row' must be a function");
    lua_pushnil(L);  /* the error slot */

    memset(&c->feed, 0, sizeof c->feed);
    c->feed.streaming = !lua_isnil(L, base + R_ONROW);
    lua_getfield(L, 2, "pull");
    c->feed.pull = lua_toboolean(L, -1);
    lua_pop(L, 1);
    c->tape = la_tape_new();
    c->parser = c->tape ? la_parser_new(la_tape_sink(), c->tape) : NULL;
    if (!c->parser)
        luaL_error(L, "out of memory");
    c->feed.L = L;
    c->feed.base = base;
    c->feed.parser = c->parser;
    c->feed.tape = c->tape;
    req->on_body = on_body;
    req->on_progress = on_progress;
    req->on_cancel = on_cancel;
    req->ud = &c->feed;
    return base;
}

/* After the last byte: finishes the parse and replaces everything above
 * base with the response table (or re-raises a handler's error). */
static int end_transfer(lua_State *L, client *c, int base, int transfer_ok)
{
    feed_ctx *x = &c->feed;
    int success = c->response.status >= 200 && c->response.status < 300, parse_no_memory;
    if (transfer_ok && success && !x->lua_failed && !x->replay_stopped) {
        c->busy = 1;
        run_feed(x, 1);
        c->busy = 0;
    }
    if (x->replay_stopped && x->parse_status != LA_PARSE_ERROR)
        x->parse_status = LA_PARSE_STOPPED;
    if (x->parse_status == LA_PARSE_ERROR)
        lua_pushstring(L, la_parser_error(c->parser));
    else
        lua_pushnil(L);
    parse_no_memory = x->parse_status == LA_PARSE_ERROR && la_parser_out_of_memory(c->parser);
    drop_transfer(L, c);  /* freed before anything below can raise */
    if (x->lua_failed) {
        lua_pushvalue(L, base + NREG + 1);
        return lua_error(L);
    }

    lua_createtable(L, 0, 8);
    if (c->response.status) {
        la_pushint64(L, c->response.status);
        lua_setfield(L, -2, "status");
    }
    push_headers(L, &c->response.headers);
    lua_setfield(L, -2, "headers");
    lua_pushnumber(L, c->response.total_seconds);
    lua_setfield(L, -2, "seconds");
    if (c->response.body.len) {
        lua_pushlstring(L, c->response.body.data, c->response.body.len);
        lua_setfield(L, -2, "body");
        la_buf_clear(&c->response.body);  /* may quote a secret back: wiped (a secret buffer) */
    }
    if (x->parse_status == LA_PARSE_ERROR) {
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "parse_error");
        if (parse_no_memory) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "out_of_memory");
        }
    } else if (!transfer_ok && !c->response.aborted_by_caller) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, c->response.transport_kind);
        lua_setfield(L, -2, "kind");
        lua_pushinteger(L, c->response.transport_code);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, c->response.transport_message);
        lua_setfield(L, -2, "message");
        lua_setfield(L, -2, "transport");
    } else if (success && (x->parse_status == LA_PARSE_OK || x->parse_status == LA_PARSE_STOPPED)) {
        lua_pushvalue(L, base + R_RESULT);
        lua_setfield(L, -2, "result");
    }
    return 1;
}

/* A Lua function that does nothing, kept in the registry: calling it lets a
 * hook the host set fire (lua.c's SIGINT handler sets one that raises
 * "interrupted!" at the next call or instruction). C that waits calls it
 * between waits of at most 100 ms, so Ctrl-C gets through. */
static const char NOOP_KEY = 'n';

static int let_hooks_run(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&NOOP_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX);
    return lua_pcall(L, 0, 0, 0);
}

/* Between the steps of query_perform: an error (the host's interrupt) is
 * kept like on_row's, the transfer aborted and the error re-raised. */
static int perform_between(void *ud)
{
    feed_ctx *x = ud;
    if (let_hooks_run(x->L) != LUA_OK) {
        lua_replace(x->L, x->base + NREG + 1);
        x->lua_failed = 1;
        return -1;
    }
    return 0;
}

/* Whether the collector runs, so that it may be paused for a full result
 * and restarted after. Lua 5.1 cannot tell: there it is left alone. */
static int gc_may_pause(lua_State *L)
{
#ifdef LUA_GCISRUNNING
    return lua_gc(L, LUA_GCISRUNNING, 0);
#else
    (void)L;
    return 0;
#endif
}

/*
 * client:perform{ url=, headers={...}, body=, username=, password=,
 *                 user_agent=, connect_timeout=, timeout=, on_row= }
 * -> { status=, headers=, result=, body=, transport={kind,code,message},
 *      parse_error=, seconds= }
 * Failures of the world are described in the table; only misuse raises,
 * and an error raised by on_row is re-raised once the transfer is over.
 */
static int query_perform(lua_State *L)
{
    client *c = check_client(L);
    la_http_request req;
    int base = begin_transfer(L, c, &req), ok;
    /* Building a full result makes almost nothing but live objects: a
     * collector running meanwhile only re-marks the growing result. No Lua
     * code runs until the transfer is over, so pausing it is invisible. */
    int pause_gc = !c->feed.streaming && gc_may_pause(L);
    if (pause_gc)
        lua_gc(L, LUA_GCSTOP, 0);
    c->busy = 1;
    ok = la_http_perform_checked(c->http, &req, &c->response, perform_between, &c->feed) == 0;
    c->busy = 0;
    if (pause_gc)
        lua_gc(L, LUA_GCRESTART, 0);
    return end_transfer(L, c, base, ok);
}

/* client:start{...}: the same request, to be moved on by client:step. */
static int query_start(lua_State *L)
{
    client *c = check_client(L);
    la_http_request req;
    int base = begin_transfer(L, c, &req), i;
    /* when nothing could start, the first step reports why */
    la_http_start(c->http, &req, &c->response);
    /* park the registers (and the error slot) until the next step */
    lua_createtable(L, NREG + 2, 0);
    for (i = 0; i <= NREG + 1; i++) {
        lua_pushvalue(L, base + i);
        lua_rawseti(L, -2, i + 1);
    }
    c->registers = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* client:step([wait_ms]) -> nil while the transfer goes on (rows reached
 * on_row meanwhile), or the response table of client:perform at the end. */
static int query_step(lua_State *L)
{
    client *c = check_client(L);
    lua_Number wait = luaL_optnumber(L, 2, 100);
    int wait_ms, base, i, done = 0, rc;
    luaL_argcheck(L, wait >= 0 && wait <= 100000, 2, "wait_ms must be from 0 to 100000");
    wait_ms = (int)wait;
    if (c->busy)
        return luaL_error(L, "client is busy with another query");
    if (c->registers == LUA_NOREF)
        return luaL_error(L, "no transfer under way");
    luaL_checkstack(L, 3 * NREG + 8, "loganalytics: stack");
    lua_settop(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->registers);
    base = lua_gettop(L) + 1;
    for (i = 0; i <= NREG + 1; i++)
        lua_rawgeti(L, 3, i + 1);
    c->feed.L = L;
    c->feed.base = base;
    c->feed.rows_this_step = 0;
    c->busy = 1;
    rc = la_http_step(c->http, wait_ms, &done);
    c->busy = 0;
    if (done)
        return end_transfer(L, c, base, rc == 0);
    for (i = 0; i <= NREG + 1; i++) {
        lua_pushvalue(L, base + i);
        lua_rawseti(L, 3, i + 1);
    }
    return 0;
}

/* client:cancel(): drops a stepped transfer under way. */
static int query_cancel(lua_State *L)
{
    client *c = check_client(L);
    if (c->busy)
        return luaL_error(L, "client is busy with another query");
    drop_transfer(L, c);
    return 0;
}

/* ------------------------------------------------------------ credentials */

#define CREDENTIAL_MT "loganalytics.credential"

static const char *const credential_kinds[] = {
    "client_secret", "client_certificate", "authorization_code",
    "refresh_token", "workload_identity", "managed_identity", NULL,
};

typedef struct credential_box {
    la_credential *cred;
    int kind;              /* index in credential_kinds */
} credential_box;

static credential_box *check_credential(lua_State *L)
{
    return luaL_checkudata(L, 1, CREDENTIAL_MT);
}

static int credential_close(lua_State *L)
{
    credential_box *b = check_credential(L);
    la_credential_free(b->cred);
    b->cred = NULL;
    return 0;
}

static int credential_tostring(lua_State *L)
{
    credential_box *b = check_credential(L);
    lua_pushfstring(L, "loganalytics.credential (%s)", credential_kinds[b->kind]);
    return 1;
}

/* Transport settings at index t into tr: a credential's options or a
 * client's transport table (la.new builds it): user_agent, connect_timeout,
 * timeout, stall_timeout, ca_file, ca_path, proxy, and verify_tls (a
 * credential's option) or insecure (the client's); its strings stay on the
 * stack while they are used. */
static void read_transport(lua_State *L, int t, la_token_transport *tr)
{
    memset(tr, 0, sizeof *tr);
    luaL_checktype(L, t, LUA_TTABLE);
    tr->user_agent = opt_string_field(L, t, "user_agent", NULL);
    tr->connect_timeout_ms = opt_ms_field(L, t, "connect_timeout");
    tr->timeout_ms = opt_ms_field(L, t, "timeout");
    tr->stall_timeout_ms = opt_ms_field(L, t, "stall_timeout");
    tr->ca_file = opt_string_field(L, t, "ca_file", NULL);
    tr->ca_path = opt_string_field(L, t, "ca_path", NULL);
    tr->proxy = opt_string_field(L, t, "proxy", NULL);
    /* la_token_transport's 0: not set, 1: verify, -1: off */
    lua_getfield(L, t, "verify_tls");
    if (!lua_isnil(L, -1)) {
        if (!lua_isboolean(L, -1))
            luaL_error(L, "field 'verify_tls' must be a boolean");
        tr->verify_tls = lua_toboolean(L, -1) ? 1 : -1;
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "insecure");
    if (!lua_isnil(L, -1))
        tr->verify_tls = lua_toboolean(L, -1) ? -1 : 1;
    lua_pop(L, 1);
}

/* core.credential(kind, options) -> credential (options checked by the Lua layer) */
static int credential_new(lua_State *L)
{
    la_credential_options o;
    credential_box *b;
    int kind = luaL_checkoption(L, 1, NULL, credential_kinds);
    luaL_checktype(L, 2, LUA_TTABLE);
    memset(&o, 0, sizeof o);
    o.kind = (la_credential_kind)(LA_CRED_CLIENT_SECRET + kind);
    o.authority_host = opt_string_field(L, 2, "authority_host", NULL);
    o.tenant = opt_string_field(L, 2, "tenant", NULL);
    o.client_id = opt_string_field(L, 2, "client_id", NULL);
    o.client_secret = opt_string_field(L, 2, "client_secret", NULL);
    o.certificate = opt_string_field(L, 2, "certificate", &o.certificate_len);
    o.certificate_password = opt_string_field(L, 2, "password", NULL);
    o.code = opt_string_field(L, 2, "code", NULL);
    o.redirect_uri = opt_string_field(L, 2, "redirect_uri", NULL);
    o.refresh_token = opt_string_field(L, 2, "refresh_token", NULL);
    o.token_file = opt_string_field(L, 2, "token_file", NULL);
    o.identity_endpoint = opt_string_field(L, 2, "identity_endpoint", NULL);
    o.identity_header = opt_string_field(L, 2, "identity_header", NULL);
    o.imds_endpoint = opt_string_field(L, 2, "imds_endpoint", NULL);
    o.mi_client_id = opt_string_field(L, 2, "mi_client_id", NULL);
    o.mi_object_id = opt_string_field(L, 2, "mi_object_id", NULL);
    o.mi_resource_id = opt_string_field(L, 2, "mi_resource_id", NULL);
    read_transport(L, 2, &o.transport);
    lua_getfield(L, 2, "use_v1");
    o.use_v1 = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "allow_http");
    o.allow_http = lua_toboolean(L, -1);
    lua_pop(L, 1);
    {
        /* the core refuses these by itself; this says why */
        char why[200];
        if (la_credential_check_endpoints(&o, why, sizeof why) != 0)
            return luaL_argerror(L, 2, why);
    }

    /* the core refuses what it cannot use (la_credential_new returns NULL
     * for it): say which field, as misuse */
    {
        const char *missing = la_credential_missing(&o);
        if (missing)
            return luaL_argerror(L, 2, missing);
    }
    b = lua_newuserdata(L, sizeof *b);
    b->cred = NULL;
    b->kind = kind;
    luaL_setmetatable(L, CREDENTIAL_MT);
    b->cred = la_credential_new(&o);
    if (!b->cred)
        return luaL_error(L, "out of memory creating a credential");
    return 1;
}

static void push_token_error(lua_State *L, const la_token_error *e)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, e->kind[0] ? e->kind : "auth");
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, e->message);
    lua_setfield(L, -2, "message");
    if (e->http_status) {
        la_pushint64(L, e->http_status);
        lua_setfield(L, -2, "status");
    }
    if (e->code[0]) {
        lua_pushstring(L, e->code);
        lua_setfield(L, -2, "code");
    }
    if (e->correlation_id[0]) {
        lua_pushstring(L, e->correlation_id);
        lua_setfield(L, -2, "correlation_id");
    }
    if (e->error_code) {
        la_pushint64(L, e->error_code);
        lua_setfield(L, -2, "error_code");
    }
}

/* credential:get_token(scope, now[, transport]) -> token, expires_on, refresh_on | nil, err */
static int credential_get_token(lua_State *L)
{
    credential_box *b = check_credential(L);
    const char *scope = luaL_checkstring(L, 2);
    lua_Number now_seconds = luaL_checknumber(L, 3);
    const char *token;
    long long expires_on, refresh_on, now;
    la_token_transport transport;
    la_token_error err;
    int has_transport = !lua_isnoneornil(L, 4);
    /* range first: the cast of 1e300 to an integer is undefined */
    luaL_argcheck(L, now_seconds >= 0 && now_seconds < 1e15, 3, "must be epoch seconds");
    now = (long long)now_seconds;
    if (has_transport)
        read_transport(L, 4, &transport);
    if (!b->cred)
        return luaL_error(L, "credential is closed");
    if (la_credential_get_token_with(b->cred, scope, has_transport ? &transport : NULL, now,
                                     &token, &expires_on, &refresh_on, &err) != 0) {
        lua_pushnil(L);
        push_token_error(L, &err);
        return 2;
    }
    lua_pushstring(L, token);
    la_pushint64(L, expires_on);
    la_pushint64(L, refresh_on);
    return 3;
}

/* ---- token requests sent by a transport of the caller's own */

/* Epoch seconds at index i (as get_token's now). */
static long long check_epoch(lua_State *L, int i)
{
    lua_Number now = luaL_checknumber(L, i);
    /* range first: the cast of 1e300 to an integer is undefined */
    luaL_argcheck(L, now >= 0 && now < 1e15, i, "must be epoch seconds");
    return (long long)now;
}

/* What complete, fail and prepare answered: token, expires_on, refresh_on
 * | nil, err; misuse raises. */
static int push_token_outcome(lua_State *L, int rc, const char *token, long long expires_on,
                              long long refresh_on, const la_token_error *err)
{
    if (rc == LA_TOKEN_MISUSE)
        return luaL_error(L, "%s", err->message);
    if (rc == -1) {
        lua_pushnil(L);
        push_token_error(L, err);
        return 2;
    }
    lua_pushstring(L, token);
    la_pushint64(L, expires_on);
    la_pushint64(L, refresh_on);
    return 3;
}

static void set_string_field(lua_State *L, const char *name, const char *value)
{
    if (value) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, name);
    }
}

static void set_bool_field(lua_State *L, const char *name, int value)
{
    lua_pushboolean(L, value);
    lua_setfield(L, -2, name);
}

static void set_seconds_field(lua_State *L, const char *name, long ms)
{
    lua_pushnumber(L, (lua_Number)ms / 1000);
    lua_setfield(L, -2, name);
}

/* la_credential_prepare's request as the table a transport's perform takes */
static void push_token_request(lua_State *L, const la_http_request *r)
{
    size_t i;
    lua_createtable(L, 0, 16);
    set_string_field(L, "method", r->method);
    set_string_field(L, "url", r->url);
    lua_createtable(L, (int)r->nheaders, 0);
    for (i = 0; i < r->nheaders; i++) {
        lua_pushstring(L, r->headers[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "headers");
    if (r->body) {
        lua_pushlstring(L, r->body, r->body_len);
        lua_setfield(L, -2, "body");
    }
    set_string_field(L, "user_agent", r->user_agent);
    set_seconds_field(L, "connect_timeout", r->connect_timeout_ms);
    set_seconds_field(L, "timeout", r->timeout_ms);
    set_seconds_field(L, "stall_timeout", r->stall_timeout_ms);
    set_string_field(L, "ca_file", r->ca_file);
    set_string_field(L, "ca_path", r->ca_path);
    set_string_field(L, "proxy", r->proxy);
    set_bool_field(L, "insecure", r->insecure);
    set_bool_field(L, "no_proxy", r->no_proxy);
    set_bool_field(L, "carries_secret", r->carries_secret);
    set_bool_field(L, "allow_http", r->allow_http);
}

/* credential:token_request(scope, now[, transport]) -> token, expires_on,
 * refresh_on (the cache answers) | false, request | nil, err */
static int credential_token_request(lua_State *L)
{
    credential_box *b = check_credential(L);
    const char *scope = luaL_checkstring(L, 2);
    long long now = check_epoch(L, 3), expires_on = 0, refresh_on = 0;
    const char *token = NULL;
    la_token_transport transport;
    la_http_request req;
    la_token_error err;
    int has_transport = !lua_isnoneornil(L, 4), rc;
    if (has_transport)
        read_transport(L, 4, &transport);
    if (!b->cred)
        return luaL_error(L, "credential is closed");
    rc = la_credential_prepare(b->cred, scope, has_transport ? &transport : NULL, now, &req,
                               &token, &expires_on, &refresh_on, &err);
    if (rc == LA_TOKEN_SEND) {
        lua_pushboolean(L, 0);
        push_token_request(L, &req);
        return 2;
    }
    return push_token_outcome(L, rc == LA_TOKEN_CACHED ? 0 : rc, token, expires_on, refresh_on,
                              &err);
}

/* credential:token_answer(scope, now, status, body) -> token, expires_on,
 * refresh_on | nil, err */
static int credential_token_answer(lua_State *L)
{
    credential_box *b = check_credential(L);
    const char *scope = luaL_checkstring(L, 2);
    long long now = check_epoch(L, 3), expires_on = 0, refresh_on = 0;
    lua_Integer status = luaL_checkinteger(L, 4);
    size_t len;
    const char *body = luaL_checklstring(L, 5, &len), *token = NULL;
    la_token_error err;
    int rc;
    luaL_argcheck(L, status >= 100 && status <= 999, 4, "must be an HTTP status");
    if (!b->cred)
        return luaL_error(L, "credential is closed");
    rc = la_credential_complete(b->cred, scope, now, (long)status, body, len, &token,
                                &expires_on, &refresh_on, &err);
    return push_token_outcome(L, rc, token, expires_on, refresh_on, &err);
}

/* credential:token_failed(scope, now, kind, message) -> token, expires_on,
 * refresh_on (the old token, not expired yet) | nil, err */
static int credential_token_failed(lua_State *L)
{
    static const char *const kinds[] = { "network", "timeout", "protocol", NULL };
    credential_box *b = check_credential(L);
    const char *scope = luaL_checkstring(L, 2);
    long long now = check_epoch(L, 3), expires_on = 0, refresh_on = 0;
    int kind = luaL_checkoption(L, 4, NULL, kinds);
    const char *message = luaL_optstring(L, 5, ""), *token = NULL;
    la_token_error err;
    int rc;
    if (!b->cred)
        return luaL_error(L, "credential is closed");
    rc = la_credential_fail(b->cred, scope, now, kinds[kind], message, &token, &expires_on,
                            &refresh_on, &err);
    return push_token_outcome(L, rc, token, expires_on, refresh_on, &err);
}

/* credential:token_abandon(): drops the token request under way (its
 * secrets wiped), e.g. when the transport raised. */
static int credential_token_abandon(lua_State *L)
{
    credential_box *b = check_credential(L);
    la_credential_abandon(b->cred);
    return 0;
}

static int credential_invalidate(lua_State *L)
{
    credential_box *b = check_credential(L);
    if (b->cred)
        la_credential_invalidate(b->cred, luaL_checkstring(L, 2));
    return 0;
}

static const luaL_Reg credential_methods[] = {
    {"get_token", credential_get_token},
    {"invalidate", credential_invalidate},
    {"token_request", credential_token_request},
    {"token_answer", credential_token_answer},
    {"token_failed", credential_token_failed},
    {"token_abandon", credential_token_abandon},
    {"close", credential_close},
    {NULL, NULL},
};

/* ------------------------------------------------------------ time */

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A wait is cut in slices this long, the host's hooks run between them */
#define SLEEP_SLICE 0.1

/* core.sleep(seconds): blocks (the nginx transport will use ngx.sleep), in
 * slices: a signal's EINTR does not restart it, and the host's interrupt
 * (Ctrl-C in lua.c) is raised within SLEEP_SLICE. */
static int core_sleep(lua_State *L)
{
    lua_Number seconds = luaL_checknumber(L, 1);
    double deadline;
    luaL_argcheck(L, seconds == seconds && seconds <= 1e9, 1,
                  "must be a number of seconds up to 1e9");
    if (!(seconds > 0))
        return 0;
    deadline = monotonic_seconds() + seconds;
    for (;;) {
        double left = deadline - monotonic_seconds();
        struct timespec ts;
        if (left <= 0)
            return 0;
        if (left > SLEEP_SLICE)
            left = SLEEP_SLICE;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)(left * 1e9);
        nanosleep(&ts, NULL);  /* EINTR: the check below comes sooner */
        if (let_hooks_run(L) != LUA_OK)
            return lua_error(L);
    }
}

/* core.now() -> seconds on a monotonic clock, for measuring waits */
static int core_now(lua_State *L)
{
    lua_pushnumber(L, monotonic_seconds());
    return 1;
}

/* core.parse_http_date(text) -> epoch seconds | nil */
static int core_parse_http_date(lua_State *L)
{
    long long t = la_http_parse_date(luaL_checkstring(L, 1));
    if (t < 0)
        return 0;
    lua_pushnumber(L, (lua_Number)t);
    return 1;
}

/* ------------------------------------------------------------ URLs */

/* Builds parse_url's table from the la_url at index 1 (run under
 * lua_pcall: the la_url owns memory that must be freed whatever happens). */
static int push_url_table(lua_State *L)
{
    const la_url *u = lua_touserdata(L, 1);
    lua_createtable(L, 0, 11);
    lua_pushstring(L, u->scheme);
    lua_setfield(L, -2, "scheme");
    lua_pushstring(L, u->host);
    lua_setfield(L, -2, "host");
    if (u->port) {
        lua_pushinteger(L, (lua_Integer)u->port);
        lua_setfield(L, -2, "port");
    }
    lua_pushstring(L, u->base);
    lua_setfield(L, -2, "base");
    lua_pushstring(L, u->path);
    lua_setfield(L, -2, "path");
    lua_pushboolean(L, u->has_userinfo);
    lua_setfield(L, -2, "userinfo");
    lua_pushboolean(L, u->has_query);
    lua_setfield(L, -2, "query");
    lua_pushboolean(L, u->has_fragment);
    lua_setfield(L, -2, "fragment");
    lua_pushboolean(L, u->has_zoneid);
    lua_setfield(L, -2, "zoneid");
    lua_pushboolean(L, u->dot_segment);
    lua_setfield(L, -2, "dot_segment");
    lua_pushboolean(L, u->loopback);
    lua_setfield(L, -2, "loopback");
    return 1;
}

/* core.base_url(url, allow_http) -> the normalized base URL | nil, why (a
 * phrase to follow the option's name: la_url_base_problem, or why the URL
 * cannot be read) */
static int push_url_base(lua_State *L)
{
    const la_url *u = lua_touserdata(L, 1);
    lua_pushstring(L, u->base);
    return 1;
}

static int core_base_url(lua_State *L)
{
    int rc;
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    int allow_http = lua_toboolean(L, 2);
    char why[200], reason[160];
    la_url u;
    if (strlen(text) != len) {
        lua_pushnil(L);
        lua_pushliteral(L, "is not a usable URL: the URL contains a NUL byte");
        return 2;
    }
    if (la_url_parse(text, &u, reason, sizeof reason) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "is not a usable URL: %s", reason);
        return 2;
    }
    if (la_url_base_problem(&u, allow_http, why, sizeof why) != 0) {
        la_url_free(&u);
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    /* no lua_error while u holds memory: the string is made under pcall */
    lua_pushcfunction(L, push_url_base);
    lua_pushlightuserdata(L, &u);
    rc = lua_pcall(L, 1, 1, 0);
    la_url_free(&u);
    if (rc != 0)
        return lua_error(L);
    return 1;
}

/* core.parse_url(url) -> { scheme=, host=, port=, base=, path=, userinfo=,
 * query=, fragment=, zoneid=, dot_segment=, loopback= } | nil, reason
 * (url.c: the URL as libcurl reads it; base is scheme://host[:port]path) */
static int core_parse_url(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    char why[200];
    la_url u;
    int rc;
    if (strlen(text) != len) {
        lua_pushnil(L);
        lua_pushliteral(L, "the URL contains a NUL byte");
        return 2;
    }
    luaL_checkstack(L, 4, "loganalytics: stack");
    if (la_url_parse(text, &u, why, sizeof why) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushcfunction(L, push_url_table);
    lua_pushlightuserdata(L, &u);
    rc = lua_pcall(L, 1, 1, 0);
    la_url_free(&u);
    if (rc != 0)
        return lua_error(L);
    return 1;
}

/* ------------------------------------------------------------ module */

static const luaL_Reg client_methods[] = {
    {"perform", query_perform},
    {"start", query_start},
    {"step", query_step},
    {"cancel", query_cancel},
    {"close", client_close},
    {NULL, NULL},
};

static const luaL_Reg functions[] = {
    {"new", client_new},
    {"query_body", query_body},
    {"decode_json", decode_json},
    {"credential", credential_new},
    {"sleep", core_sleep},
    {"now", core_now},
    {"parse_http_date", core_parse_http_date},
    {"parse_url", core_parse_url},
    {"base_url", core_base_url},
    {NULL, NULL},
};

/* A userdata class: methods as __index, one idempotent close for __gc
 * and __close, and __tostring. */
static void register_class(lua_State *L, const char *name, const luaL_Reg *methods,
                           lua_CFunction close, lua_CFunction tostring)
{
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__close");
#endif
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_loganalytics_core(lua_State *L);

int luaopen_loganalytics_core(lua_State *L)
{
    if (la_http_global_init() != 0)  /* once per process, thread-safe */
        return luaL_error(L, "curl_global_init failed");

    lua_pushlightuserdata(L, (void *)&NOOP_KEY);
    if (luaL_loadstring(L, "return") != LUA_OK)
        return lua_error(L);
    lua_rawset(L, LUA_REGISTRYINDEX);

    if (luaL_newmetatable(L, JSON_BOX_MT)) {
        lua_pushcfunction(L, json_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);

    register_class(L, CLIENT_MT, client_methods, client_close, client_tostring);
    register_class(L, CREDENTIAL_MT, credential_methods, credential_close, credential_tostring);

    luaL_newlib(L, functions);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pushstring(L, la_http_library_version());
    lua_setfield(L, -2, "curl_version");
    lua_pushstring(L, la_gunzip_inflater);
    lua_setfield(L, -2, "gzip_inflater");
    return 1;
}
