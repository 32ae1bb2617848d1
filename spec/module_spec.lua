-- The module table and the demo workspace, end to end.
local helper = require "helper"
local la = require "loganalytics"
local core = require "loganalytics.core"

-- The Lua type API.md promises for a non-null cell of each column type.
local LUA_TYPE = {
  bool = "boolean", int = "integer", long = "integer", real = "float",
  decimal = "string", datetime = "string", timespan = "string", guid = "string",
  string = "string", dynamic = "string",
}

local function lua_type(v)
  return math.type(v) or type(v)
end

local function assert_cells_typed(tbl)
  for r, row in ipairs(tbl.rows) do
    assert.are.equal(#tbl.columns, #row)
    for j, col in ipairs(tbl.columns) do
      local v = row[j]
      if v ~= la.null then
        local want = assert(LUA_TYPE[col.type], "unexpected column type " .. col.type)
        assert(lua_type(v) == want, ("row %d column %s (%s): expected %s, got %s %s")
          :format(r, col.name, col.type, want, lua_type(v), tostring(v)))
      end
    end
  end
end

local function query(client, kql, opts)
  local result, err = client:query(kql, opts)
  assert(result, "query failed: " .. tostring(err))
  assert.are.equal("success", result.status)
  return result
end

describe("the loganalytics module", function()
  it("has a semantic _VERSION", function()
    assert.is_string(la._VERSION)
    assert.matches("^%d+%.%d+%.%d+$", la._VERSION)
  end)

  it("has la.null, a light userdata equal to loganalytics.core's null", function()
    assert.are.equal("userdata", type(la.null))
    assert.are.equal(core.null, la.null)
    assert.are.equal(la.null, core.decode_json("null"))
  end)

  it("makes clients with a query method", function()
    local client = helper.client()
    assert.is_not_nil(client)
    assert.is_function(client.query)
  end)

  describe("against the demo workspace", function()
    local client
    setup(function() client = helper.client() end)

    it("returns 5 rows for Heartbeat | take 5, typed by column", function()
      local result = query(client, "Heartbeat | take 5")
      assert.are.equal(1, #result.tables)
      local tbl = result.tables[1]
      assert.are.equal("PrimaryResult", tbl.name)
      assert.are.equal(5, #tbl.rows)
      assert_cells_typed(tbl)
      local types = {}
      for _, col in ipairs(tbl.columns) do types[col.name] = col.type end
      assert.are.equal("datetime", types.TimeGenerated)
      assert.are.equal("bool", types.IsGatewayInstalled)
      assert.are.equal("guid", types.SourceComputerId)
      for _, row in ipairs(tbl.rows) do
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%.%d]*Z$", row.TimeGenerated)
        assert.is_boolean(row.IsGatewayInstalled)
        assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", row.SourceComputerId)
        assert.are.equal("Heartbeat", row.Type)
      end
    end)

    it("types real, long and bool columns of Usage", function()
      local tbl = query(client, "Usage | take 20").tables[1]
      assert.are.equal(20, #tbl.rows)
      assert_cells_typed(tbl)
      for _, row in ipairs(tbl.rows) do
        assert.are.equal("float", math.type(row.Quantity))
        assert.are.equal("integer", math.type(row.BatchesWithinSla))
        assert.is_boolean(row.IsBillable)
      end
    end)

    it("types long and dynamic columns of AzureActivity, nulls included", function()
      local tbl = query(client, "AzureActivity | take 200").tables[1]
      assert.are.equal(200, #tbl.rows)
      assert_cells_typed(tbl)
      local nulls = 0
      for _, row in ipairs(tbl.rows) do
        if row.Caller == la.null then nulls = nulls + 1 end
        assert.is_table(core.decode_json(row.Properties))
      end
      assert.is_true(nulls > 0)
    end)

    it("gives integer counts by Category that sum to the table's count", function()
      local by_category = query(client, "AzureActivity | summarize count() by Category").tables[1]
      assert.are.same({ { name = "Category", type = "string" }, { name = "count_", type = "long" } },
        by_category.columns)
      assert.is_true(#by_category.rows > 1)
      local sum, seen = 0, {}
      for _, row in ipairs(by_category.rows) do
        assert.is_string(row.Category)
        assert.is_nil(seen[row.Category])
        seen[row.Category] = true
        assert.are.equal("integer", math.type(row.count_))
        assert.is_true(row.count_ > 0)
        sum = sum + row.count_
      end
      local total = query(client, "AzureActivity | count").tables[1].rows[1][1]
      assert.are.equal("integer", math.type(total))
      assert.are.equal(total, sum)
    end)

    it("returns the demo data for a resource-centric query", function()
      local resource = "/subscriptions/0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0/resourceGroups/aks-nodes"
        .. "/providers/Microsoft.ContainerService/managedClusters/aks-1"
      local by_resource = query(client, "Heartbeat | take 3", { resource = resource }).tables[1]
      local by_workspace = query(client, "Heartbeat | take 3").tables[1]
      assert.are.equal(3, #by_resource.rows)
      assert.are.same(by_workspace.columns, by_resource.columns)
      for r = 1, 3 do
        for j = 1, #by_workspace.columns do
          assert.are.equal(by_workspace.rows[r][j], by_resource.rows[r][j])
        end
      end
    end)
  end)
end)
