rockspec_format = "3.0"
package = "loganalytics"
version = "0.2.0-1"
source = {
  url = "git+https://github.com/loganalytics-lua/loganalytics.git",
  tag = "v0.2.0",
}
description = {
  summary = "Azure Monitor Log Analytics queries from Lua, with a streaming C core",
  detailed = [[
    client:query(kql) against the Log Analytics v1 query API: results as Lua
    tables of typed rows (64-bit exact longs), parsed as they arrive by a C
    core over libcurl, cJSON, OpenSSL and zlib or, when installed, ISA-L
    (igzip, the faster gzip).
  ]],
  homepage = "https://github.com/loganalytics-lua/loganalytics",
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
-- Unix-like systems (Linux, macOS, the BSDs); Windows is not supported.
supported_platforms = { "unix" }
-- Built by CMakeLists.txt, which holds the one list of C sources, finds the
-- libraries with pkg-config (libcurl >= 7.66, libcjson >= 1.7.13, libcrypto
-- of OpenSSL 1.1.1 or 3.x; ISA-L's libisal when there, else zlib) and says
-- at configure time what is missing. LOGANALYTICS_WITH_ISAL=OFF in the
-- environment builds without ISA-L even where it is installed.
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_C_FLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUA_LUADIR = "$(LUADIR)",
    LUA_LIBDIR = "$(LIBDIR)",
    BUILD_TEST_TOOLS = "OFF",
  },
  platforms = {
    macosx = {
      -- CMakeLists.txt links with -undefined dynamic_lookup on APPLE; LuaRocks'
      -- own flag for modules says the same to a toolchain that reads it
      variables = {
        CMAKE_MODULE_LINKER_FLAGS = "-undefined dynamic_lookup",
      },
    },
  },
  -- the `loganalytics` command (LuaRocks writes a wrapper into the tree's bin/)
  install = {
    bin = {
      loganalytics = "bin/loganalytics.lua",
    },
  },
}
