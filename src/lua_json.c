/*
 * loganalytics.core's JSON helpers, on cJSON: core.decode_json (error
 * bodies, token responses), core.query_body (the request body) and the
 * Lua value of a JSON text (the result's statistics, render and error
 * members, for lua_decoder.c). JSON null is core.null, a NULL light
 * userdata.
 */
#include "lua_binding.h"

#include <cjson/cJSON.h>
#include <string.h>

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
int la_push_json_text(lua_State *L, const char *text, size_t len)
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
    if (la_push_json_text(L, text, len))
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

int la_push_json_value(lua_State *L, const char *json, size_t len)
{
    if (la_push_json_text(L, json, len))
        return 1;
    /* the text is valid JSON: cJSON refused it for its depth, or for want
     * of memory */
    if (json_depth(json, len) <= CJSON_NESTING_LIMIT)
        return 0;
    lua_pushlstring(L, json, len);  /* deeper than cJSON reads: keep the text */
    return 1;
}

/* ------------------------------------------------------ $batch answers */

#define BATCH_BOX_MT "loganalytics.batch_box"

/* Holds the parsed answers while Lua values are made: an error (memory)
 * frees them in __gc. */
static int batch_box_gc(lua_State *L)
{
    la_batch_answers *a = luaL_checkudata(L, 1, BATCH_BOX_MT);
    la_batch_answers_free(a);
    return 0;
}

/***
 * Reads the answer to a `POST /v1/$batch` request (internal API of
 * `loganalytics.core`, for `client:batch`).
 * @function core.batch_answers
 * @tparam string text the response body:
 *   `{"responses":[{"id":..,"status":..,"headers":{..},"body":..}, ...]}`
 * @return an array, in the order sent, of `{ id = string, status = integer,
 *   headers = { [lower-case name] = value }, body = string|nil }`: `body`
 *   is the body's compact JSON text with every number's digits as sent (so
 *   that `core.decoder` reads longs beyond 2^53 exactly), or, when the
 *   service sent the body as a JSON string (a known quirk), that string's
 *   contents (itself JSON text); `body_was_string = true` then; no `body`
 *   when it was null or absent. Repeated header names are joined by ", ".
 *   Or `nil, err` with `err.kind` "protocol" (not JSON, not that shape: an
 *   answer without a string `id` or an integer `status` from 100 to 599,
 *   headers not strings, a member given twice, nesting deeper than 4096)
 *   or "memory", and `err.message`.
 */
static int batch_answers(lua_State *L)
{
    size_t len, i, k;
    const char *text;
    la_batch_answers *a;
    /* a number is no answer (luaL_checklstring would take it) */
    luaL_argcheck(L, lua_type(L, 1) == LUA_TSTRING, 1, "the answer must be a string");
    text = lua_tolstring(L, 1, &len);
    a = lua_newuserdata(L, sizeof *a);
    memset(a, 0, sizeof *a);
    luaL_setmetatable(L, BATCH_BOX_MT);
    if (la_batch_answers_parse(text, len, a) != 0) {
        lua_pushnil(L);
        lua_createtable(L, 0, 2);
        if (a->out_of_memory)
            lua_pushliteral(L, "memory");
        else
            lua_pushliteral(L, "protocol");
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, a->error);
        lua_setfield(L, -2, "message");
        return 2;
    }
    lua_createtable(L, a->n < 1000000 ? (int)a->n : 0, 0);
    for (i = 0; i < a->n; i++) {
        const la_batch_answer *item = &a->items[i];
        const char *p = item->headers.data;
        lua_createtable(L, 0, 5);
        lua_pushlstring(L, item->id.data ? item->id.data : "", item->id.len);
        lua_setfield(L, -2, "id");
        lua_pushinteger(L, (lua_Integer)item->status);
        lua_setfield(L, -2, "status");
        lua_newtable(L);
        for (k = 0; k < item->nheaders; k++) {
            const char *name = p, *value = p + strlen(p) + 1;
            lua_getfield(L, -1, name);
            if (lua_isstring(L, -1)) {
                lua_pushliteral(L, ", ");
                lua_pushstring(L, value);
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushstring(L, value);
            }
            lua_setfield(L, -2, name);
            p = value + strlen(value) + 1;
        }
        lua_setfield(L, -2, "headers");
        if (item->has_body) {
            lua_pushlstring(L, item->body.data ? item->body.data : "", item->body.len);
            lua_setfield(L, -2, "body");
            if (item->body_was_string) {
                lua_pushboolean(L, 1);
                lua_setfield(L, -2, "body_was_string");
            }
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

static const luaL_Reg json_functions[] = {
    {"decode_json", decode_json},
    {"query_body", query_body},
    {"batch_answers", batch_answers},
    {NULL, NULL},
};

void la_json_open(lua_State *L)
{
    if (luaL_newmetatable(L, JSON_BOX_MT)) {
        lua_pushcfunction(L, json_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, BATCH_BOX_MT)) {
        lua_pushcfunction(L, batch_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, json_functions, 0);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
}
