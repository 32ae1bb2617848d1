-- The LuaRocks path: `luarocks make` of the scm rockspec builds offline into
-- a tree, for each Lua, and that Lua with only the tree on its paths runs a
-- query.
local helper = require "helper"

local run = helper.run

describe("the rockspec", function()
  local work = os.tmpname()

  setup(function()
    -- build from a copy, so the rock's object files stay out of the checkout
    os.remove(work)
    assert(run(("mkdir -p %s && cp -r CMakeLists.txt src lua rockspec bin %s/"):format(work, work)))
  end)

  teardown(function()
    run("rm -rf " .. work)
  end)

  for _, version in ipairs { "5.4", "5.3", "5.2", "5.1" } do
    it("installs with luarocks make for Lua " .. version .. " and answers a query from the tree", function()
      local tree = work .. "/tree-" .. version
      local ok, output = run(("cd %s && luarocks --lua-version=%s make rockspec/loganalytics-scm-1.rockspec --tree=%s")
        :format(work, version, tree))
      assert.is_true(ok, output)
      assert.matches("is now installed", output)

      local script = work .. "/query.lua"
      local f = assert(io.open(script, "w"))
      f:write([[
        local la = require "loganalytics"
        local where = package.searchpath and package.searchpath("loganalytics.core", package.cpath) or "?"
        local client = la.new{ endpoint = arg[1], workspace = "DEMO_WORKSPACE", api_key = "DEMO_KEY" }
        local result = assert(client:query("Heartbeat | count"))
        local count = result.tables[1].rows[1].Count
        print(where, math.type and math.type(count) or type(count), count)
      ]])
      f:close()
      -- only the tree's paths: nothing from the checkout
      ok, output = run(("LUA_PATH='%s/share/lua/%s/?.lua;;' LUA_CPATH='%s/lib/lua/%s/?.so;;' lua%s %s %s")
        :format(tree, version, tree, version, version, script, helper.endpoint()))
      assert.is_true(ok, output)
      local where, kind, count = output:match("^(%S+)\t(%S+)\t(%d+)")
      if version ~= "5.1" then  -- (5.1 has no package.searchpath)
        assert.equals(tree .. "/lib/lua/" .. version .. "/loganalytics/core.so", where)
      end
      assert.equals(tonumber(version) >= 5.3 and "integer" or "number", kind)
      assert.is_true(tonumber(count) > 0)

      -- and the command, through the wrapper LuaRocks wrote for that Lua
      ok, output = run(("%s/bin/loganalytics --demo --endpoint %s -o csv 'Heartbeat | count'")
        :format(tree, helper.endpoint()))
      assert.is_true(ok, output)
      assert.equals("Count\r\n" .. count .. "\r\n", output)
    end)
  end
end)
