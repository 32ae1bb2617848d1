-- "No wrong answer called success": a 200 whose body is not a query result,
-- server fields that would overwrite the result's own, rows whose width is
-- not their table's column count, and malformed framing are errors, never a
-- result (the FIXTURES workspace serves spec/fixtures/<name>.json raw, in
-- one piece or in 7-byte chunks).
local helper = require "helper"

local function fixtures_client(opts)
  local o = { workspace = "FIXTURES", max_retries = 0 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return helper.client(o)
end

describe("a 200 that is not a query result", function()
  local cases = {
    bad_not_a_result = 'no "tables" array',
    bad_unrelated_json = 'no "tables" array',
    bad_tables_null = '"tables" is not an array',
    bad_tables_twice = 'two "tables" members',
    bad_long_rows = "more cells than its table has columns",
    bad_long_rows_nested = "more cells than its table has columns",
    bad_short_rows = "fewer cells than its table has columns",
    bad_rows_before_columns = "more cells than its table has columns",
    bad_columns_twice = '"columns" come after its rows or twice',
  }
  for name, message in pairs(cases) do
    it("is a protocol error: " .. name, function()
      local client = fixtures_client()
      for _, mode in ipairs { "", "chunked:" } do
        for _, on_row in ipairs { false, true } do
          local seen = 0
          local opts = on_row and { on_row = function() seen = seen + 1 end } or nil
          local result, err = client:query(mode .. name, opts)
          assert.is_nil(result, mode .. name .. " gave a result")
          assert.equals("protocol", err.kind, tostring(err))
          assert.matches(message, err.message, 1, true)
          assert.equals(200, err.status)
        end
      end
    end)
  end

  it("is refused by rows() too", function()
    local client = fixtures_client()
    assert.has_error(function()
      for _ in client:rows("bad_not_a_result") do end
    end)
  end)
end)

describe("top-level members the server sends", function()
  it("never overwrite the result's own fields (stopped, status, request_id, error = null)", function()
    local client = fixtures_client()
    for _, on_row in ipairs { false, true } do
      local rows = 0
      local result, err = client:query("server_fields",
        on_row and { on_row = function() rows = rows + 1 end } or nil)
      assert.is_table(result, tostring(err))
      assert.equals("success", result.status)
      assert.is_nil(result.stopped)
      assert.is_nil(result.error)
      assert.is_nil(result.row_count)
      assert.is_string(result.request_id)
      assert.are_not.equal("forged", result.request_id)
      assert.equals(1, result.tables[1].row_count)
    end
  end)
end)
