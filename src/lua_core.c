/*
 * loganalytics.core: the module's opening, and its small functions (time,
 * URLs). The objects each have their file (lua_binding.h lists them); the
 * C core under them (la_core.h) never includes lua.h.
 */
#include "lua_binding.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ options */

/* Readers of option tables, for every object's constructor or method. */
const char *opt_string_field(lua_State *L, int t, const char *name, size_t *len)
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

long opt_ms_field(lua_State *L, int t, const char *name)
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

/* ------------------------------------------------------------ hooks */

/* A Lua function that does nothing, kept in the registry: calling it lets a
 * hook the host set fire (lua.c's SIGINT handler sets one that raises
 * "interrupted!" at the next call or instruction). C that waits calls it
 * between waits of at most 100 ms, so Ctrl-C gets through. */
static const char NOOP_KEY = 'n';

int la_let_hooks_run(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&NOOP_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX);
    return lua_pcall(L, 0, 0, 0);
}

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
        if (la_let_hooks_run(L) != LUA_OK)
            return lua_error(L);
    }
}

/* core.now() -> seconds on a monotonic clock, for measuring waits */
static int core_now(lua_State *L)
{
    lua_pushnumber(L, monotonic_seconds());
    return 1;
}

/* core.wall_clock() -> seconds since the epoch, now (not cached): beside
 * nginx's ngx.now(), cached when its event loop last woke, it tells how long
 * the loop's current turn has run, whoever ran it. */
static int core_wall_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
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

/* ------------------------------------------------------------ datetimes */

/* The units of la.datetime and la.iso8601 (mode), as ticks per unit. */
static long long datetime_unit(lua_State *L, int arg)
{
    static const char *const modes[] = {"epoch", "epoch_ms", "ticks", NULL};
    static const long long units[] = {10000000LL, 10000LL, 1LL};
    int mode = luaL_checkoption(L, arg, "epoch", modes);
#if LUA_VERSION_NUM < 503
    if (units[mode] == 1)
        luaL_argerror(L, arg, "\"ticks\" needs Lua 5.3 or later (64-bit integers)");
#endif
    return units[mode];
}

/* core.datetime(text [, mode]) -> seconds since 1970 (epoch, a float) |
 * integer milliseconds (epoch_ms, rounded down) | integer ticks, or
 * nil, why when text is not the service's datetime */
static int core_datetime(lua_State *L)
{
    size_t len;
    const char *text;
    long long ticks, unit;
    luaL_argcheck(L, lua_type(L, 1) == LUA_TSTRING, 1, "must be a string");
    text = lua_tolstring(L, 1, &len);
    unit = datetime_unit(L, 2);
    if (la_datetime_parse(text, len, &ticks) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "not a datetime: expected YYYY-MM-DDTHH:MM:SS[.fffffff]Z "
                           "(UTC, years 0001-9999, a real date)");
        return 2;
    }
    if (unit == 10000000LL)
        lua_pushnumber(L, (lua_Number)la_ticks_to_epoch(ticks));
    else
        la_pushint64(L, unit == 1 ? ticks : la_ticks_to_epoch_ms(ticks));
    return 1;
}

/* The ticks of v units after 1970 (ticks: after 0001-01-01) in *ticks,
 * or -1 when v is not finite or the time is outside years 1-9999. */
static int ticks_of(lua_State *L, int idx, long long unit, long long *ticks)
{
    const long long base = unit == 1 ? 0 : LA_TICKS_UNIX_EPOCH;
    lua_Number x, whole;
    long long n;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        /* in range first: the products below must not overflow */
        if (i < (-base - 1) / unit || i > (LA_TICKS_MAX - base) / unit + 1)
            return -1;
        *ticks = (long long)i * unit + base;
        return *ticks >= 0 && *ticks <= LA_TICKS_MAX ? 0 : -1;
    }
#endif
    x = lua_tonumber(L, idx);
    whole = floor(x);
    /* NaN and infinities fail here too */
    if (!(whole >= (lua_Number)((-base) / unit) - 1 &&
          whole <= (lua_Number)((LA_TICKS_MAX - base) / unit) + 1))
        return -1;
    n = (long long)whole * unit + llround((x - whole) * (lua_Number)unit) + base;
    if (n < 0 || n > LA_TICKS_MAX)
        return -1;
    *ticks = n;
    return 0;
}

/* core.iso8601(v [, mode]) -> "YYYY-MM-DDTHH:MM:SS.fffffffZ" | nil, why:
 * the inverse of core.datetime (v seconds, milliseconds or ticks) */
static int core_iso8601(lua_State *L)
{
    char text[LA_DATETIME_TEXT_SIZE];
    long long ticks, unit;
    luaL_checktype(L, 1, LUA_TNUMBER);
    unit = datetime_unit(L, 2);
    if (ticks_of(L, 1, unit, &ticks) != 0 || la_datetime_format(ticks, text, sizeof text) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "not a time from year 1 to 9999");
        return 2;
    }
    lua_pushstring(L, text);
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

/* Pushes push(u)'s value and frees u. No lua_error may unwind while u
 * holds memory: the value is made under pcall, the error raised after. */
static int push_and_free_url(lua_State *L, la_url *u, lua_CFunction push)
{
    int rc;
    lua_pushcfunction(L, push);
    lua_pushlightuserdata(L, u);
    rc = lua_pcall(L, 1, 1, 0);
    la_url_free(u);
    if (rc != 0)
        return lua_error(L);
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
    return push_and_free_url(L, &u, push_url_base);
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
    return push_and_free_url(L, &u, push_url_table);
}

/* ------------------------------------------------------------ other transports */

/* core.request_refusal(url, { headers = {...}, username =, allow_http =,
 * carries_secret = }) -> nil | why: the rule the libcurl transport applies
 * before sending (la_http_refusal), for a transport of Lua's own (nginx
 * cosockets) to apply too. No proxy is considered: such a transport uses
 * none. */
static int core_request_refusal(lua_State *L)
{
    la_http_request req;
    const char **headers = NULL;
    size_t i, nheaders = 0, len;
    char why[300];
    memset(&req, 0, sizeof req);
    req.url = luaL_checklstring(L, 1, &len);
    if (strlen(req.url) != len) {
        lua_pushliteral(L, "refused: the URL contains a NUL byte");
        return 1;
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    req.username = opt_string_field(L, 2, "username", NULL);
    lua_getfield(L, 2, "allow_http");
    req.allow_http = lua_toboolean(L, -1);
    lua_getfield(L, 2, "carries_secret");
    req.carries_secret = lua_toboolean(L, -1);
    lua_getfield(L, 2, "headers");
    if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, lua_istable(L, -1), 2, "field 'headers' must be a table of strings");
        nheaders = lua_rawlen(L, -1);
        headers = lua_newuserdata(L, (nheaders ? nheaders : 1) * sizeof *headers);
        for (i = 0; i < nheaders; i++) {
            lua_rawgeti(L, -2, (int)i + 1);
            luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "field 'headers' must be a table of strings");
            headers[i] = lua_tostring(L, -1);  /* kept alive by the table */
            lua_pop(L, 1);
        }
    }
    req.headers = headers;
    req.nheaders = nheaders;
    req.no_proxy = 1;
    if (la_http_refusal(&req, why, sizeof why) == 0)
        lua_pushnil(L);
    else
        lua_pushstring(L, why);
    return 1;
}

typedef struct inflated {
    la_buf out;
    int cut;
} inflated;

static int keep_inflated(void *ud, const char *data, size_t len)
{
    inflated *x = ud;
    if (x->out.len + len > LA_KEPT_BODY_MAX) {
        len = LA_KEPT_BODY_MAX - x->out.len;
        x->cut = 1;
    }
    if (la_buf_append(&x->out, data, len) != 0)
        return -1;
    return x->cut ? -1 : 0;  /* enough: the rest is not kept */
}

static int push_inflated(lua_State *L)
{
    const inflated *x = lua_touserdata(L, 1);
    lua_pushlstring(L, x->out.data ? x->out.data : "", x->out.len);
    return 1;
}

/* core.gunzip(bytes) -> text | nil, why: a whole gzip body that is kept
 * rather than decoded as rows (an error answer), cut at the size kept
 * bodies are capped at (LA_KEPT_BODY_MAX). A secret buffer: such bodies
 * may quote the request back. */
static int core_gunzip(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    la_gunzip *gz = la_gunzip_new();
    inflated x;
    int rc, ok, corrupt;
    if (!gz)
        return luaL_error(L, "not enough memory");
    la_buf_init_secret(&x.out);
    x.cut = 0;
    rc = la_gunzip_feed(gz, data, len, keep_inflated, &x);
    ok = x.cut || (rc == 0 && la_gunzip_done(gz));
    corrupt = la_gunzip_failed(gz);
    la_gunzip_free(gz);
    if (!ok) {
        la_buf_free(&x.out);
        lua_pushnil(L);
        lua_pushstring(L, corrupt ? "the gzip data is corrupt" : "the gzip stream ended early");
        return 2;
    }
    lua_pushcfunction(L, push_inflated);
    lua_pushlightuserdata(L, &x);
    rc = lua_pcall(L, 1, 1, 0);
    la_buf_free(&x.out);
    if (rc != 0)
        return lua_error(L);
    return 1;
}

/* ------------------------------------------------------------ module */

static const luaL_Reg functions[] = {
    {"sleep", core_sleep},
    {"now", core_now},
    {"wall_clock", core_wall_clock},
    {"parse_http_date", core_parse_http_date},
    {"datetime", core_datetime},
    {"iso8601", core_iso8601},
    {"parse_url", core_parse_url},
    {"base_url", core_base_url},
    {"request_refusal", core_request_refusal},
    {"gunzip", core_gunzip},
    {NULL, NULL},
};

void la_register_class(lua_State *L, const char *name, const luaL_Reg *methods,
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

    luaL_newlib(L, functions);
    la_json_open(L);
    la_decoder_open(L);
    la_columns_open(L);
    la_client_open(L);
    la_credential_open(L);
    lua_pushstring(L, la_http_library_version());
    lua_setfield(L, -2, "curl_version");
    lua_pushstring(L, la_gunzip_inflater);
    lua_setfield(L, -2, "gzip_inflater");
    return 1;
}
