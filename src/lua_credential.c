/*
 * loganalytics.core's credential object: core.credential(kind, options)
 * over the C core's credential.c (token requests, token cache).
 */
#include "lua_binding.h"

#include <string.h>

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

void la_credential_open(lua_State *L)
{
    la_register_class(L, CREDENTIAL_MT, credential_methods, credential_close, credential_tostring);
    lua_pushcfunction(L, credential_new);
    lua_setfield(L, -2, "credential");
}
