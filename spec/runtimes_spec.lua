-- One source, one binary per runtime: the module builds for Lua 5.1, 5.2,
-- 5.3, 5.4 and LuaJIT (OpenResty's), and each answers a real query. Longs
-- beyond 2^53 stay exact: integers on 5.3+, decimal strings where numbers
-- are doubles.
local helper = require "helper"

local RUNTIMES = {
  { version = "5.1", interpreter = "lua5.1", integers = false },
  { version = "5.2", interpreter = "lua5.2", integers = false },
  { version = "5.3", interpreter = "lua5.3", integers = true },
  { version = "5.4", interpreter = "lua5.4", integers = true },
  { version = "jit", interpreter = "luajit", integers = false },
}

local run = helper.run

describe("every Lua runtime", function()
  for _, rt in ipairs(RUNTIMES) do
    it("builds for " .. rt.version .. " without warnings and answers a query", function()
      local dir = "build/lua-" .. rt.version
      local ok, out = run(("cmake -S . -B %s -DLUA_VERSION=%s >/dev/null && cmake --build %s --target loganalytics_core -- -s")
        :format(dir, rt.version, dir))
      assert.is_true(ok, out)
      assert.is_nil(out:find("warning", 1, true), out)

      ok, out = run(("LUA_PATH='lua/?.lua;;' LUA_CPATH='%s/?.so;;' %s spec/scripts/runtime_smoke.lua %s")
        :format(dir, rt.interpreter, helper.endpoint()))
      assert.is_true(ok, out)
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      local cells = lines[1]
      if rt.integers then
        assert.matches("number:9223372036854775807 number:%-9223372036854775808 number:9007199254740993 ", cells)
      else
        assert.matches("string:9223372036854775807 string:%-9223372036854775808 string:9007199254740993 ", cells)
      end
      -- within 2^53 a long is a number everywhere
      assert.matches("number:2147483647 ", cells)
      assert.matches("number:1000$", cells)
      assert.equals("3\tWIN-SRV-01", lines[2])
      assert.equals("rows\t5", lines[3])
    end)
  end
end)
