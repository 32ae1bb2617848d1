/*
 * A minimal Lua 5.4 host built with AddressSanitizer and UBSan, for
 * `make check-asan`: it runs a script (busted) with Debian's liblua5.4 in a
 * process whose main program carries the sanitizer runtime, so the module
 * built with -DSANITIZE=ON (build/asan/loganalytics/core.so) loads without
 * LD_PRELOAD. Nothing the specs spawn (curl, python3, sh, lua5.4, openssl,
 * luarocks) inherits the runtime: only this process is checked.
 *
 *   gcc -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
 *     -I/usr/include/lua5.4 -o build/asan/asan_lua fuzz/asan_lua.c -llua5.4
 *   build/asan/asan_lua /usr/bin/busted --cpath='build/asan/?.so'
 *
 * Like lua(1): `arg` holds the script name at 0 and its arguments from 1,
 * the script gets them as `...`, a leading "#!" line is skipped, an error
 * prints a traceback and exits 1. busted ends with os.exit(code, true),
 * which closes the state first (every __gc runs, so LeakSanitizer sees what
 * the module failed to free); C modules stay mapped so leak stacks and
 * fuzz/lsan.supp can name them.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* lua_close dlcloses every C module (the __gc of the registry's _CLIBS
 * table). A leak found after that has "<unknown module>" where the module's
 * frames were, and no suppression can name it: keep them loaded. */
static void keep_c_modules_loaded(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, "_CLIBS") == LUA_TTABLE && lua_getmetatable(L, -1)) {
        lua_pushnil(L);
        lua_setfield(L, -2, "__gc");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

int main(int argc, char **argv)
{
    lua_State *L;
    int i, status;

    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create a Lua state\n", argv[0]);
        return 1;
    }
    luaL_openlibs(L);
    keep_c_modules_loaded(L);

    /* arg = { [-1] = host, [0] = script, args... } */
    lua_createtable(L, argc - 2, 2);
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, traceback);
    status = luaL_loadfile(L, argv[1]);
    if (status == LUA_OK) {
        for (i = 2; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 0, 1);
    }
    if (status != LUA_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    lua_close(L);
    return 0;
}
