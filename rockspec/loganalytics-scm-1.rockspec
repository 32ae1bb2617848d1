rockspec_format = "3.0"
package = "loganalytics"
version = "scm-1"
source = {
  url = "git+https://github.com/loganalytics-lua/loganalytics.git",
}
description = {
  summary = "Azure Monitor Log Analytics queries from Lua, with a streaming C core",
  detailed = [[
    client:query(kql) against the Log Analytics v1 query API: results as Lua
    tables of typed rows (64-bit exact longs), parsed as they arrive by a C
    core over libcurl, ISA-L (igzip), cJSON and OpenSSL.
  ]],
  homepage = "https://github.com/loganalytics-lua/loganalytics",
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
-- Debian keeps curl's headers under /usr/include/<multiarch>, where LuaRocks
-- does not look; the compiler does, so CURL is found by its library instead.
external_dependencies = {
  CURL = { library = "curl" },
  CJSON = { header = "cjson/cJSON.h" },
  OPENSSL = { header = "openssl/evp.h" },
  ISAL = { header = "isa-l/igzip_lib.h" },
}
build = {
  type = "builtin",
  modules = {
    ["loganalytics"] = "lua/loganalytics.lua",
    ["loganalytics.errors"] = "lua/loganalytics/errors.lua",
    ["loganalytics.check"] = "lua/loganalytics/check.lua",
    ["loganalytics.clouds"] = "lua/loganalytics/clouds.lua",
    ["loganalytics.credentials"] = "lua/loganalytics/credentials.lua",
    ["loganalytics.retry"] = "lua/loganalytics/retry.lua",
    ["loganalytics.token_cache"] = "lua/loganalytics/token_cache.lua",
    ["loganalytics.redact"] = "lua/loganalytics/redact.lua",
    ["loganalytics.nginx"] = "lua/loganalytics/nginx.lua",
    ["loganalytics.timespan"] = "lua/loganalytics/timespan.lua",
    ["loganalytics.numbers"] = "lua/loganalytics/numbers.lua",
    ["loganalytics.cli.values"] = "lua/loganalytics/cli/values.lua",
    ["loganalytics.cli.formats"] = "lua/loganalytics/cli/formats.lua",
    ["loganalytics.cli.table_format"] = "lua/loganalytics/cli/table_format.lua",
    ["loganalytics.cli.terminal"] = "lua/loganalytics/cli/terminal.lua",
    ["loganalytics.core"] = {
      sources = {
        "src/buffer.c",
        "src/cell.c",
        "src/string_cache.c",
        "src/event_tape.c",
        "src/body_worker.c",
        "src/gunzip.c",
        "src/json_tokenizer.c",
        "src/response_parser.c",
        "src/request_body.c",
        "src/url.c",
        "src/http.c",
        "src/credential.c",
        "src/client_assertion.c",
        "src/lua_binding.c",
      },
      libraries = { "curl", "cjson", "crypto", "isal", "pthread", "m" },
      incdirs = { "$(CJSON_INCDIR)", "$(OPENSSL_INCDIR)", "$(ISAL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(CJSON_LIBDIR)", "$(OPENSSL_LIBDIR)", "$(ISAL_LIBDIR)" },
    },
  },
  -- the `loganalytics` command (LuaRocks writes a wrapper into the tree's bin/)
  install = {
    bin = {
      loganalytics = "bin/loganalytics.lua",
    },
  },
}
