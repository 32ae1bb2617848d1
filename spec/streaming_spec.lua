-- Streaming: on_row handlers and the client:rows iterator see exactly the
-- rows of the full result; stopping early closes the transfer; a handler's
-- error is re-raised with the client left usable.
local helper = require "helper"
local la = require "loganalytics"

local null = la.null

local assert_same_rows = helper.assert_same_rows

local function fixtures()
  local names = {}
  local pipe = io.popen("ls spec/fixtures")
  for file in pipe:lines() do
    local name = file:match("^(.-)%.json$")
    -- only the 200 answers with tables (bad_*: bodies that are not a query result)
    if name and not helper.read_file("spec/fixtures/" .. file):find("^#") and name ~= "not_json"
        and not name:find("^bad_") then
      names[#names + 1] = name
    end
  end
  pipe:close()
  return names
end

describe("on_row", function()
  local client = helper.client()

  local function streamed(kql, opts)
    local rows, tables = {}, {}
    local o = { on_row = function(row, tbl)
      rows[#rows + 1] = row
      tables[#tables + 1] = tbl
    end }
    for k, v in pairs(opts or {}) do o[k] = v end
    local result, err = client:query(kql, o)
    assert.is_table(result, tostring(err))
    return result, rows, tables
  end

  it("sees exactly the rows of the full result, in order, typed the same", function()
    for _, kql in ipairs { "AzureActivity", "Heartbeat", "Usage" } do
      local full = assert(client:query(kql))
      local result, rows = streamed(kql)
      assert_same_rows(full.tables[1].rows, rows, kql)
      assert.equals(#rows, result.tables[1].row_count)
      assert.equals(0, #result.tables[1].rows)
    end
  end)

  it("agrees with the full result on every fixture, also in 7-byte chunks", function()
    for _, name in ipairs(fixtures()) do
      local full = assert(client:query(name, { workspace = "FIXTURES" }))
      for _, mode in ipairs { "", "chunked:" } do
        local result, rows = streamed(mode .. name, { workspace = "FIXTURES" })
        local all = {}
        for _, t in ipairs(full.tables) do
          for _, row in ipairs(t.rows) do all[#all + 1] = row end
        end
        assert_same_rows(all, rows, mode .. name)
        assert.equals(full.status, result.status)
        assert.equals(#full.tables, #result.tables)
      end
    end
  end)

  it("passes the row's table: name, columns, and rows by name", function()
    local _, rows, tables = streamed("Usage | project DataType, Quantity | take 3")
    assert.equals(3, #rows)
    for i = 1, 3 do
      assert.equals("PrimaryResult", tables[i].name)
      assert.equals("DataType", tables[i].columns[1].name)
      assert.equals(rows[i][1], rows[i].DataType)
    end
  end)

  it("keeps the status and the error of a partial result", function()
    local result, rows = streamed("partial", { workspace = "FIXTURES" })
    assert.equals("partial", result.status)
    assert.equals("PartialError", result.error.code)
    assert.equals(2, #rows)
  end)

  it("stops the transfer when the handler returns false, closing the connection", function()
    helper.reset()
    local seen = 0
    local result = assert(client:query("AzureActivity", { on_row = function()
      seen = seen + 1
      if seen == 5 then return false end
    end }))
    assert.equals(5, seen)
    assert.is_true(result.stopped)
    assert.equals(5, result.tables[1].row_count)
    -- the half-read connection is not reused: the next query opens another
    assert.is_table((client:query("Heartbeat | take 1")))
    local log = helper.get("/_test/requests")
    assert.equals(2, #log)
    assert.are_not.equal(log[1].connection, log[2].connection)
  end)

  it("re-raises a handler's error after the transfer, leaving the client usable", function()
    local boom = setmetatable({}, { __tostring = function() return "boom" end })
    local ok, err = pcall(client.query, client, "AzureActivity", { on_row = function() error(boom) end })
    assert.is_false(ok)
    assert.equals(boom, err)
    local result = assert(client:query("Heartbeat | take 2"))
    assert.equals(2, #result.tables[1].rows)
  end)

  it("refuses a handler that is not callable", function()
    assert.has_error(function() client:query("Heartbeat", { on_row = 42 }) end)
  end)
end)

describe("client:rows", function()
  local client = helper.client()

  it("yields the same rows as the full result", function()
    local full = assert(client:query("AzureActivity"))
    local rows = {}
    for row, tbl in client:rows("AzureActivity") do
      assert.equals("PrimaryResult", tbl.name)
      rows[#rows + 1] = row
    end
    assert_same_rows(full.tables[1].rows, rows, "rows")
  end)

  it("can be left early, and the client goes on", function()
    local n = 0
    for _ in client:rows("AzureActivity") do
      n = n + 1
      if n == 3 then break end
    end
    assert.equals(3, n)
    assert.equals(4, #assert(client:query("Heartbeat | take 4")).tables[1].rows)
  end)

  it("raises the error object query would return", function()
    local ok, err = pcall(function()
      for _ in client:rows("completely invalid syntax") do end
    end)
    assert.is_false(ok)
    assert.is_true(la.is_error(err))
    assert.equals("service", err.kind)
    assert.equals(400, err.status)
  end)

  it("gives rows that read by name", function()
    for row in client:rows("Heartbeat | project Computer, OSType | take 2") do
      assert.equals(row[1], row.Computer)
      assert.is_true(row.OSType == "Linux" or row.OSType == "Windows")
    end
  end)
end)

describe("connection reuse", function()
  it("carries 200 small queries on one TCP connection", function()
    local client = helper.client()
    helper.reset()
    for _ = 1, 200 do
      assert.is_table((client:query("Heartbeat | take 1")))
    end
    -- one connection for the queries, one for this stats request
    assert.equals(2, helper.get("/_test/stats").connections)
    local log = helper.get("/_test/requests")
    assert.equals(200, #log)
    for i = 2, 200 do assert.equals(log[1].connection, log[i].connection) end
  end)
end)

describe("la.null in streamed rows", function()
  it("is the same light userdata as in full rows", function()
    local seen
    helper.client():query("all_types", { workspace = "FIXTURES", on_row = function(row) seen = row end })
    assert.equals(null, seen[1])
  end)
end)
