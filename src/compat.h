/*
 * The few Lua 5.2+ API calls the binding uses, for Lua 5.1 and LuaJIT
 * (in the spirit of compat-5.3, reduced to what we need).
 */
#ifndef LA_COMPAT_H
#define LA_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdint.h>

#if LUA_VERSION_NUM < 502

#define lua_rawlen(L, i) lua_objlen(L, (i))
#define lua_absindex(L, i) \
    ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)

/* LuaJIT 2.1 already has these (LUA_OK comes with them) */
#ifndef LUA_OK
#define LUA_OK 0

static inline void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    int i;
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name; l++) {
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

static inline void luaL_setmetatable(lua_State *L, const char *name)
{
    luaL_getmetatable(L, name);
    lua_setmetatable(L, -2);
}

#define luaL_newlibtable(L, l) lua_createtable(L, 0, sizeof(l) / sizeof((l)[0]) - 1)
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))
#endif

#endif

/* The range of lua_Integer: on Lua 5.1 and LuaJIT it is ptrdiff_t, 32 bits
 * on a 32-bit system. */
#if LUA_VERSION_NUM >= 503
#define LA_INTEGER_MAX LUA_MAXINTEGER
#define LA_INTEGER_MIN LUA_MININTEGER
#else
#define LA_INTEGER_MAX PTRDIFF_MAX
#define LA_INTEGER_MIN PTRDIFF_MIN
#endif

/* Pushes a 64-bit integer (a status, an expiry, a count): as an integer
 * where lua_Integer holds it, else as a number (exact up to 2^53), never
 * truncated. */
static inline void la_pushint64(lua_State *L, long long v)
{
#if LA_INTEGER_MAX >= LLONG_MAX && LA_INTEGER_MIN <= LLONG_MIN
    lua_pushinteger(L, (lua_Integer)v);
#else
    if (v >= LA_INTEGER_MIN && v <= LA_INTEGER_MAX)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, (lua_Number)v);
#endif
}

#endif
