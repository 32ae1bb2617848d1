/*
 * loganalytics.core's client: the libcurl transport (http.c). Each
 * transfer has a decoder (lua_decoder.c), kept in the client's user value
 * while the transfer is under way: libcurl's on_body feeds its parser
 * (on a worker thread for a large body, body_worker.c), on_progress makes
 * its Lua values on the caller's thread. Lua errors (memory, an on_row
 * handler's, the host's interrupt) never unwind through libcurl: the
 * decoder replays under lua_pcall and keeps the error, re-raised here once
 * the transfer has ended.
 */
#include "lua_binding.h"

#include <string.h>
#include <time.h>

typedef struct client {
    la_http *http;
    la_http_response response;
    la_decoder *transfer;    /* the transfer under way (its decoder), or NULL */
    int raw;                 /* that transfer keeps its body whole (raw = true) */
    int full;                /* ... builds a full result (no on_row) */
    int to_file;             /* ... writes its 2xx body to file (body_file) */
    la_body_file file;
    int busy;                /* inside perform or step */
    int grouped;             /* made by core.new(group) */
} client;

/* A group (core.group): its transfers run on one multi handle. */
typedef struct group {
    la_http_group *g;        /* NULL once closed */
} group;

/* The client's user value: { [TRANSFER] = the transfer's decoder,
 * [GROUP] = its group's userdata (which it keeps alive), [FILE_PATH] = the
 * body_file path of the transfer under way }. The group's user value:
 * { [client pointer] = client userdata } for each client whose transfer was
 * started and not yet collected by its step (what g:wait drives). */
#define TRANSFER 1
#define GROUP 2
#define FILE_PATH 3
#define GROUP_MT "loganalytics.group"

static client *check_client(lua_State *L)
{
    return luaL_checkudata(L, 1, CLIENT_MT);
}

/* The group of the client at index 1 (pushed; nil when none) and its C
 * part (NULL when none or closed). */
static group *push_group(lua_State *L)
{
    la_getuservalue(L, 1);
    lua_rawgeti(L, -1, GROUP);
    lua_remove(L, -2);
    return lua_isnil(L, -1) ? NULL : lua_touserdata(L, -1);
}

/* From inside a drive of the group (an on_row handler of one of its
 * transfers), no transfer of the group may start, step, end or wait. */
static void check_group_idle(lua_State *L, client *c)
{
    group *gb;
    if (!c->grouped)
        return;
    gb = push_group(L);
    if (gb && gb->g && la_http_group_busy(gb->g))
        luaL_error(L, "the group is busy: a transfer's on_row cannot start, step, cancel or "
                      "close the group's transfers, nor wait on the group");
    lua_pop(L, 1);
}

/* Adds (or removes, client NULL) the client at index 1 to its group's
 * transfers under way. Removing never allocates. */
static void group_track(lua_State *L, client *c, int add)
{
    if (!c->grouped)
        return;
    push_group(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    la_getuservalue(L, -1);
    lua_pushlightuserdata(L, c);
    if (add)
        lua_pushvalue(L, 1);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

/* Drops a transfer under way, if any (the client at index 1). */
static void drop_transfer(lua_State *L, client *c)
{
    if (c->http)
        la_http_cancel(c->http);  /* ends the worker thread, if any */
    if (c->transfer)
        la_decoder_release(c->transfer);
    c->transfer = NULL;
    if (c->to_file)
        la_body_file_close(&c->file, 0);
    c->to_file = 0;
    la_getuservalue(L, 1);
    lua_pushnil(L);
    lua_rawseti(L, -2, TRANSFER);  /* the array part: no allocation */
    lua_pushnil(L);
    lua_rawseti(L, -2, FILE_PATH);
    lua_pop(L, 1);
    group_track(L, c, 0);
}

static int client_close(lua_State *L)
{
    client *c = check_client(L);
    if (c->busy)
        return luaL_error(L, "cannot close a client while it runs a query");
    /* only a transfer under way touches the group's multi handle; an idle
     * client may be collected (closed) while its group is driven */
    if (c->transfer)
        check_group_idle(L, c);
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

/* core.new([group]) -> client */
static int client_new(lua_State *L)
{
    group *gb = NULL;
    client *c;
    if (!lua_isnoneornil(L, 1)) {
        gb = luaL_checkudata(L, 1, GROUP_MT);
        if (!gb->g)
            return luaL_argerror(L, 1, "the group is closed");
    }
    lua_settop(L, 1);
    c = la_newuserdata_uv(L, sizeof *c);
    memset(c, 0, sizeof *c);
    la_http_response_init(&c->response);
    la_body_file_init(&c->file, NULL);
    /* metatable first, so __gc frees whatever the next steps acquire */
    luaL_setmetatable(L, CLIENT_MT);
    lua_createtable(L, FILE_PATH, 0);
    if (gb) {
        lua_pushvalue(L, 1);
        lua_rawseti(L, -2, GROUP);
    }
    la_setuservalue(L, -2);
    c->grouped = gb != NULL;
    c->http = gb ? la_http_new_in(gb->g) : la_http_new();
    if (!c->http)
        return luaL_error(L, "cannot create a libcurl handle");
    return 1;
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
    req->method = opt_string_field(L, 2, "method", NULL);
    if (req->method && strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0)
        luaL_argerror(L, 2, "field 'method' must be \"GET\" or \"POST\"");
    req->body = opt_string_field(L, 2, "body", &req->body_len);
    if (req->body && req->method && strcmp(req->method, "GET") == 0)
        luaL_argerror(L, 2, "field 'body' is not for a GET");
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
    lua_getfield(L, 2, "body_max");
    if (!lua_isnil(L, -1)) {
        lua_Number n = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= 1e12) || n != (lua_Number)(long long)n)
            luaL_argerror(L, 2, "field 'body_max' must be a whole number of bytes from 1 to 1e12");
        req->kept_body_max = (size_t)n;
    }
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

/* Checks the client, reads the request and pushes the transfer's decoder;
 * returns its slot. */
static int begin_transfer(lua_State *L, client *c, la_http_request *req)
{
    int on_row = 0, raw, slot;
    const char *body_file;
    la_value_options values;
    la_decoder *d;
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!c->http)
        luaL_error(L, "client is closed");
    if (la_http_group_closed(c->http))
        luaL_error(L, "the client's group is closed");
    check_group_idle(L, c);
    /* one transfer per client: a call from inside a transfer's callback, or
     * while a stepped transfer is parked (a rows() loop, a query yielding
     * from on_progress), must not take the handle from under it */
    if (c->busy || c->transfer)
        luaL_error(L, "loganalytics.client (%p) is busy with another transfer", (void *)c);
    read_request(L, req);
    lua_getfield(L, 2, "on_row");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        luaL_argerror(L, 2, "field 'on_row' must be a function");
    if (!lua_isnil(L, -1))
        on_row = lua_gettop(L);
    lua_getfield(L, 2, "raw");
    raw = lua_toboolean(L, -1);
    lua_pop(L, 1);
    body_file = opt_string_field(L, 2, "body_file", NULL);
    if (body_file && (raw || on_row))
        luaL_argerror(L, 2, "field 'body_file' excludes 'raw' and 'on_row'");
    la_read_value_options(L, 2, 2, &values);
    if (values.columns && (on_row || raw || body_file))
        luaL_argerror(L, 2, "field 'shape' = \"columns\" is for a full result: "
                            "not with 'on_row', 'raw' or 'body_file'");
    lua_pushboolean(L, raw);
    lua_getfield(L, 2, "pull");

    d = la_decoder_push(L, 0, on_row ? LA_DECODE_CALL : LA_DECODE_KEEP, on_row, 0, &values);
    slot = lua_gettop(L);
    la_decoder_set_owned(d);
    la_decoder_set_pull(d, lua_toboolean(L, -2));
    la_getuservalue(L, 1);
    lua_pushvalue(L, slot);
    lua_rawseti(L, -2, TRANSFER);
    if (body_file) {
        lua_getfield(L, 2, "body_file");  /* kept alive while the transfer runs */
        lua_rawseti(L, -2, FILE_PATH);
    }
    lua_pop(L, 1);
    c->transfer = d;
    group_track(L, c, 1);
    c->raw = raw;
    c->to_file = body_file != NULL;
    c->full = !on_row && !raw && !body_file;
    la_decoder_begin_call(d, L, slot);
    if (body_file) {
        /* a 2xx body goes to the file; others are kept, as always */
        la_body_file_init(&c->file, body_file);
        req->on_body = la_body_file_write;
        req->ud = &c->file;
    } else if (!raw) {
        /* raw: no on_body, libcurl keeps the body of any status */
        req->on_body = la_decoder_on_body;
        req->on_progress = la_decoder_progress;
        req->on_cancel = la_decoder_cancel;
        req->ud = d;
    }
    return slot;
}

/* After the last byte: finishes the parse, ends the transfer and pushes
 * the response table (or re-raises a handler's error). */
static int end_transfer(lua_State *L, client *c, int slot, int transfer_ok)
{
    la_decoder *d = c->transfer;
    int success = c->response.status >= 200 && c->response.status < 300, parse_no_memory;
    int to_file = c->to_file, file_failed = 0;
    unsigned long long file_bytes = 0;
    la_parse_status status;
    if (to_file) {
        /* flushed to the disk before success is told */
        file_failed = la_body_file_close(&c->file, transfer_ok && success) != 0;
        file_bytes = c->file.bytes;
        c->to_file = 0;
    }
    if (!c->raw && !to_file && transfer_ok && success && !la_decoder_failed(d) &&
        !la_decoder_stopped(d)) {
        c->busy = 1;
        la_decoder_end(L, slot, d);
        c->busy = 0;
    }
    status = la_decoder_status(d);
    if (status == LA_PARSE_ERROR)
        lua_pushstring(L, la_decoder_error(d));
    else
        lua_pushnil(L);
    parse_no_memory = status == LA_PARSE_ERROR && la_decoder_out_of_memory(d);
    if (la_decoder_failed(d)) {
        la_decoder_push_error(L, slot);
        drop_transfer(L, c);  /* freed before anything below can raise */
        return lua_error(L);
    }
    drop_transfer(L, c);

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
    if (c->response.body_truncated) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "body_truncated");
    }
    if (file_failed) {
        /* a local failure (disk full, no such directory): kind "file" */
        lua_createtable(L, 0, 3);
        lua_pushliteral(L, "file");
        lua_setfield(L, -2, "kind");
        lua_pushinteger(L, c->file.error);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, c->file.message);
        lua_setfield(L, -2, "message");
        lua_setfield(L, -2, "transport");
    } else if (status == LA_PARSE_ERROR) {
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
    } else if (success && to_file) {
        la_pushint64(L, (long long)file_bytes);
        lua_setfield(L, -2, "body_file_bytes");
    } else if (success && !c->raw) {
        la_decoder_push_result(L, slot);
        lua_setfield(L, -2, "result");
    }
    return 1;
}

/* What perform_between needs: where the transfer's decoder is. */
typedef struct between_ctx {
    lua_State *L;
    int slot;
    la_decoder *decoder;
} between_ctx;

/* Between the waits of query_perform: an error (the host's interrupt) is
 * kept like on_row's, the transfer aborted and the error re-raised. */
static int perform_between(void *ud)
{
    between_ctx *b = ud;
    if (la_let_hooks_run(b->L) != LUA_OK) {
        la_decoder_fail(b->L, b->slot, b->decoder);
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
 * client:perform{ url=, method=, headers={...}, body=, username=, password=,
 *                 user_agent=, connect_timeout=, timeout=, on_row=, raw= }
 * method = "POST" (default) or "GET" (then no body).
 * -> { status=, headers=, result=, body=, transport={kind,code,message},
 *      parse_error=, seconds= }
 * raw = true: the body is not parsed but kept whole in body, whatever the
 * status (capped at LA_KEPT_BODY_MAX, as error bodies are, or at body_max
 * bytes; a body cut at its cap has body_truncated = true: a $batch answer
 * read raw needs the whole of it).
 * body_file = path (not with raw or on_row): a 2xx body, gunzipped, is
 * written to the file (created mode 0600, or truncated, at its first byte:
 * a non-2xx answer leaves it alone; an empty body makes an empty file) and
 * synced to the disk; the response then has body_file_bytes and no result.
 * A local failure (cannot open, disk full) is transport = { kind = "file",
 * code = errno, message }, never a success (the file holds what was
 * written). Other statuses keep their body in response.body, as always.
 * On a grouped client (core.new(group)) the transfer runs on the group's
 * multi handle, and waiting for it moves the group's other transfers too.
 * Failures of the world are described in the table; only misuse raises,
 * and an error raised by on_row is re-raised once the transfer is over.
 */
static int group_perform(lua_State *L, client *c, int slot, la_http_request *req);

static int query_perform(lua_State *L)
{
    client *c = check_client(L);
    la_http_request req;
    between_ctx between;
    int slot = begin_transfer(L, c, &req), ok;
    if (c->grouped)
        return group_perform(L, c, slot, &req);
    /* Building a full result makes almost nothing but live objects: a
     * collector running meanwhile only re-marks the growing result. No Lua
     * code runs until the transfer is over, so pausing it is invisible. */
    int pause_gc = c->full && gc_may_pause(L);
    between.L = L;
    between.slot = slot;
    between.decoder = c->transfer;
    if (pause_gc)
        lua_gc(L, LUA_GCSTOP, 0);
    c->busy = 1;
    ok = la_http_perform_checked(c->http, &req, &c->response, perform_between, &between) == 0;
    c->busy = 0;
    if (pause_gc)
        lua_gc(L, LUA_GCRESTART, 0);
    return end_transfer(L, c, slot, ok);
}

/* Pushes the decoder of each member (the group's member table at index
 * members) with a transfer under way, and gives each its slot: a drive of
 * the group may make rows for any of them. */
static void load_member_decoders(lua_State *L, int members)
{
    lua_pushnil(L);
    while (lua_next(L, members)) {
        client *m = lua_touserdata(L, -1);
        if (m && m->transfer) {
            luaL_checkstack(L, 4, "loganalytics: stack");
            la_getuservalue(L, -1);
            lua_rawgeti(L, -1, TRANSFER);
            lua_insert(L, -4);  /* below key and value: stays for the drive */
            lua_pop(L, 1);
            la_decoder_begin_call(m->transfer, L, -3);
        }
        lua_pop(L, 1);
    }
}

/* Before a drive of the client's group (the client at index 1): every
 * transfer of the group may make rows, so each decoder gets its slot on
 * this stack. */
static void prepare_group(lua_State *L)
{
    int members;
    if (!push_group(L)) {
        lua_pop(L, 1);
        return;
    }
    la_getuservalue(L, -1);
    members = lua_gettop(L);
    load_member_decoders(L, members);
    /* the group and its table stay below the decoders, whose slots are set */
}

/* client:perform on a grouped client: its steps drive the whole group. */
static int group_perform(lua_State *L, client *c, int slot, la_http_request *req)
{
    between_ctx between;
    int done = 0, rc = la_http_start(c->http, req, &c->response), top;
    between.L = L;
    between.slot = slot;
    between.decoder = c->transfer;
    (void)rc;  /* when nothing could start, the first step reports why */
    top = lua_gettop(L);
    for (;;) {
        lua_settop(L, top);
        prepare_group(L);
        la_decoder_begin_call(c->transfer, L, slot);
        c->busy = 1;
        rc = la_http_step(c->http, 100, &done);
        c->busy = 0;
        if (done)
            break;
        if (perform_between(&between) != 0) {
            la_http_cancel(c->http);
            c->response.aborted_by_caller = 1;
            rc = -1;
            break;
        }
    }
    lua_settop(L, top);
    return end_transfer(L, c, slot, rc == 0);
}

/* client:start{...}: the same request, to be moved on by client:step. */
static int query_start(lua_State *L)
{
    client *c = check_client(L);
    la_http_request req;
    begin_transfer(L, c, &req);
    /* when nothing could start, the first step reports why */
    la_http_start(c->http, &req, &c->response);
    return 0;
}

/* client:step([wait_ms]) -> nil while the transfer goes on (rows reached
 * on_row meanwhile), or the response table of client:perform at the end. */
static int query_step(lua_State *L)
{
    client *c = check_client(L);
    lua_Number wait = luaL_optnumber(L, 2, 100);
    int wait_ms, slot, done = 0, rc;
    luaL_argcheck(L, wait >= 0 && wait <= 100000, 2, "wait_ms must be from 0 to 100000");
    wait_ms = (int)wait;
    if (c->busy)
        return luaL_error(L, "client is busy with another query");
    if (!c->transfer)
        return luaL_error(L, "no transfer under way");
    check_group_idle(L, c);
    lua_settop(L, 2);
    la_getuservalue(L, 1);
    lua_rawgeti(L, -1, TRANSFER);
    slot = lua_gettop(L);
    if (c->grouped)
        prepare_group(L);
    la_decoder_begin_call(c->transfer, L, slot);
    c->busy = 1;
    rc = la_http_step(c->http, wait_ms, &done);
    c->busy = 0;
    if (done)
        return end_transfer(L, c, slot, rc == 0);
    return 0;
}

/* client:cancel(): drops a stepped transfer under way. */
static int query_cancel(lua_State *L)
{
    client *c = check_client(L);
    if (c->busy)
        return luaL_error(L, "client is busy with another query");
    check_group_idle(L, c);
    drop_transfer(L, c);
    return 0;
}

/* ------------------------------------------------------------- groups */

static long long la_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static group *check_group(lua_State *L)
{
    group *gb = luaL_checkudata(L, 1, GROUP_MT);
    if (!gb->g)
        luaL_error(L, "the group is closed");
    return gb;
}

/*
 * core.group{ max_connections = N } -> group
 * One libcurl multi handle for the transfers of the clients made with
 * core.new(group): HTTP/2 multiplexing where the server offers it
 * (CURLPIPE_MULTIPLEX), else at most N connections (default 8, 1 to 1000)
 * shared by all, kept open and reused from transfer to transfer (the rest
 * wait in libcurl's queue). A group's transfers decode on the caller's
 * thread (never the body worker), and their `timeout` counts the time the
 * group is driven (g:wait, a step) once the transfer has a connection, not
 * its wait in the queue; stall_timeout and the plain-http guard are per
 * transfer as ever. Each client keeps its group alive (its user value).
 */
static int group_new(lua_State *L)
{
    lua_Number n = 8;
    group *gb;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "max_connections");
        if (!lua_isnil(L, -1)) {
            n = lua_tonumber(L, -1);
            if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= 1000) || n != (lua_Number)(long)n)
                return luaL_argerror(L, 1, "field 'max_connections' must be a whole number from 1 to 1000");
        }
        lua_pop(L, 1);
    }
    gb = la_newuserdata_uv(L, sizeof *gb);
    gb->g = NULL;
    luaL_setmetatable(L, GROUP_MT);
    lua_newtable(L);
    la_setuservalue(L, -2);
    gb->g = la_http_group_new((long)n);
    if (!gb->g)
        return luaL_error(L, "cannot create a libcurl multi handle");
    return 1;
}

/* g:close() (and __gc): cancels the transfers under way (each client's
 * step then gives a response with transport.kind "cancelled"); the
 * clients can start nothing more. Idempotent. */
static int group_close(lua_State *L)
{
    group *gb = luaL_checkudata(L, 1, GROUP_MT);
    if (gb->g && la_http_group_busy(gb->g))
        return luaL_error(L, "the group is busy: a transfer's on_row cannot close it");
    la_http_group_free(gb->g);
    gb->g = NULL;
    return 0;
}

static int group_tostring(lua_State *L)
{
    group *gb = luaL_checkudata(L, 1, GROUP_MT);
    lua_pushfstring(L, "loganalytics.group (%p)%s", (void *)gb, gb->g ? "" : " closed");
    return 1;
}

/* Appends to the array at index list the group's clients whose transfers
 * ended and were not told yet; their number. */
static int list_finished(lua_State *L, int members, int list)
{
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, members)) {
        client *m = lua_touserdata(L, -1);
        if (m && m->http && m->transfer && la_http_group_finished(m->http)) {
            lua_pushvalue(L, -1);
            lua_rawseti(L, list, ++n);
        }
        lua_pop(L, 1);
    }
    return n;
}

/*
 * g:wait([ms]) -> { client, ... }
 * Drives every transfer of the group (their on_row handlers run here) for
 * up to ms milliseconds (default 100, at most 100000), returning as soon
 * as at least one has ended: the clients whose transfers ended and were
 * not returned by an earlier wait (one that ended while another client's
 * step or perform drove the group comes at the next wait, at once; so does
 * one that could not start), in no particular order; possibly empty. Each
 * such client's step then gives its response (or re-raises its on_row's
 * error). The host's hooks (Ctrl-C) run every 100 ms at most. Raises when
 * the group is closed, or when called from inside one of its transfers'
 * on_row (so do those clients' start, step, cancel and close, and g:close).
 */
static int group_wait(lua_State *L)
{
    group *gb = check_group(L);
    lua_Number wait = luaL_optnumber(L, 2, 100);
    long long left;
    int members, list, top;
    luaL_argcheck(L, wait >= 0 && wait <= 100000, 2, "wait_ms must be from 0 to 100000");
    if (la_http_group_busy(gb->g))
        return luaL_error(L, "the group is busy: a transfer's on_row cannot wait on it");
    left = (long long)wait;
    lua_settop(L, 1);
    lua_newtable(L);
    list = 2;
    la_getuservalue(L, 1);
    members = 3;
    top = lua_gettop(L);
    if (list_finished(L, members, list) > 0) {
        lua_settop(L, list);
        return 1;
    }
    for (;;) {
        /* the host's interrupt gets in at least every 100 ms */
        int slice = left > 100 ? 100 : (int)left;
        long long before = la_now_ms();
        lua_settop(L, top);
        load_member_decoders(L, members);
        la_http_group_drive(gb->g, slice);
        lua_settop(L, top);
        if (list_finished(L, members, list) > 0 || !gb->g)
            break;
        left -= la_now_ms() - before;
        if (left <= 0)
            break;
        if (la_let_hooks_run(L) != LUA_OK)
            return lua_error(L);
    }
    lua_settop(L, list);
    return 1;
}

static const luaL_Reg group_methods[] = {
    {"wait", group_wait},
    {"close", group_close},
    {NULL, NULL},
};

static const luaL_Reg client_methods[] = {
    {"perform", query_perform},
    {"start", query_start},
    {"step", query_step},
    {"cancel", query_cancel},
    {"close", client_close},
    {NULL, NULL},
};

void la_client_open(lua_State *L)
{
    la_register_class(L, CLIENT_MT, client_methods, client_close, client_tostring);
    lua_pushcfunction(L, client_new);
    lua_setfield(L, -2, "new");
    la_register_class(L, GROUP_MT, group_methods, group_close, group_tostring);
    lua_pushcfunction(L, group_new);
    lua_setfield(L, -2, "group");
}
