-- The LuaRocks path: `luarocks make` of the scm rockspec builds offline into
-- a tree, and lua5.4 with that tree on its paths runs a query.
local helper = require "helper"

local run = helper.run

describe("the rockspec", function()
  local work = os.tmpname()

  setup(function()
    -- build from a copy, so the rock's object files stay out of the checkout
    os.remove(work)
    assert(run(("mkdir -p %s && cp -r src lua rockspec %s/"):format(work, work)))
  end)

  teardown(function()
    run("rm -rf " .. work)
  end)

  it("installs with luarocks make and answers a query from the installed tree", function()
    local tree = work .. "/tree"
    local ok, output = run(("cd %s && luarocks --lua-version=5.4 make rockspec/loganalytics-scm-1.rockspec --tree=%s")
      :format(work, tree))
    assert.is_true(ok, output)
    assert.matches("is now installed", output)

    local script = work .. "/query.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local la = require "loganalytics"
      local where = package.searchpath("loganalytics.core", package.cpath)
      local client = la.new{ endpoint = arg[1], workspace = "DEMO_WORKSPACE", api_key = "DEMO_KEY" }
      local result = assert(client:query("Heartbeat | count"))
      print(where, math.type(result.tables[1].rows[1][1]), result.tables[1].rows[1].Count)
    ]])
    f:close()
    -- only the tree's paths: nothing from the checkout
    ok, output = run(("LUA_PATH='%s/share/lua/5.4/?.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;' lua5.4 %s %s")
      :format(tree, tree, script, helper.endpoint()))
    assert.is_true(ok, output)
    local where, kind, count = output:match("^(%S+)\t(%S+)\t(%d+)")
    assert.equals(tree .. "/lib/lua/5.4/loganalytics/core.so", where)
    assert.equals("integer", kind)
    assert.is_true(tonumber(count) > 0)
  end)
end)
