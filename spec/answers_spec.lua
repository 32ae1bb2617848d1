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

describe("malformed framing on a 200", function()
  -- server/faults.py; each must be one try, kind "protocol", not a retried "network"
  local cases = {
    { "bad_chunk", "hexadecimal" },           -- a chunk size that is not hex
    { "chunk_cut", "outstanding read data" }, -- a chunk longer than the bytes sent
    { "huge_header:200", "headers are too large" },
    { "long_length", "bytes remaining" },     -- Content-Length beyond the body
    { "short_length", "ended before its JSON was complete" },
    { "truncate_body", "bytes remaining" },
    { "bad_gzip", "gzip data is corrupt" },
    { "truncate_gzip", "gzip" },
    { "bad_status_line", "HTTP/0.9" },
  }
  for _, case in ipairs(cases) do
    it("is a protocol error, not retried: " .. case[1], function()
      for _, threads in ipairs { true, false } do
        local client = helper.client { workspace = "FAULTS", max_retries = 2, retry_delay = 0.01,
                                       threads = threads }
        helper.reset()
        local result, err = client:query(case[1])
        assert.is_nil(result)
        assert.equals("protocol", err.kind, tostring(err))
        assert.matches(case[2], err.message, 1, true)
        assert.equals(1, helper.get("/_test/stats").requests, "retried: " .. tostring(err))
        -- and the client goes on working
        assert.equals("success",
          assert(client:query("Heartbeat | take 1", { workspace = "DEMO_WORKSPACE" })).status)
      end
    end)
  end

  it("a connection reset mid-body stays a network error", function()
    local client = helper.client { workspace = "FAULTS" }
    local result, err = client:query("reset_mid_body")
    assert.is_nil(result)
    assert.equals("network", err.kind, tostring(err))
  end)

  it("a header of 50 KB (under libcurl's limit) is fine", function()
    local client = helper.client { workspace = "FAULTS" }
    assert.equals("success", assert(client:query("huge_header:50")).status)
  end)
end)

describe("a query that is not valid UTF-8", function()
  local bad = {
    "T | where x == '\255'", "\192\175", "\224\128\175", "\240\128\128\175",  -- overlong
    "\237\160\128", "\237\191\191",  -- surrogates
    "\244\144\128\128",  -- above U+10FFFF
    "caf\195", "\128abc", "\195\40",
  }
  for i, kql in ipairs(bad) do
    it("raises before any request: #" .. i, function()
      local client = helper.client()
      helper.reset()
      local ok, err = pcall(client.query, client, kql)
      assert.is_false(ok)
      assert.matches("valid UTF%-8", tostring(err))
      assert.equals(0, helper.get("/_test/stats").requests)
    end)
  end
  it("passes valid UTF-8 (2, 3 and 4 bytes, U+FFFF, U+10FFFF)", function()
    local client = helper.client()
    for _, kql in ipairs { "print 'café'", "print '€'", "print '𝄞'", "print '\239\191\191'",
                           "print '\244\143\191\191'" } do
      local result, err = client:query(kql)
      assert(result or err.kind ~= nil, "raised for " .. kql)
    end
  end)
end)

describe("timespans", function()
  local timespan = require "loganalytics.timespan"

  it("raise for days and times that do not exist", function()
    for _, s in ipairs { "2023-02-29", "2100-02-29", "2024-13-01", "2024-04-31", "2024-06-31",
                         "2024-01-01T24:00:01Z", "2024-01-01T24:01:00Z", "2024-01-01T24:00:00.5Z",
                         "2024-01-01T23:59:60Z", "2024-01-01T00:00:00+24:00" } do
      assert.is_false(timespan.is_datetime(s), s)
      assert.has_error(function() timespan.format(s .. "/PT1H") end, nil, s)
      assert.has_error(function() timespan.format { start = s, duration = 60 } end, nil, s)
    end
    for _, s in ipairs { "2024-02-29", "2000-02-29", "2024-01-01T24:00:00Z", "2024-12-31T23:59:59.9999999Z" } do
      assert.is_true(timespan.is_datetime(s), s)
    end
  end)

  it("raise when the finish is before the start", function()
    assert.has_error(function() timespan.format { start = 1704067201, finish = 1704067200 } end,
      "timespan: finish is before start")
    assert.has_error(function()
      timespan.format { start = "2024-01-02T00:00:00Z", finish = "2024-01-01T00:00:00Z" }
    end, "timespan: finish is before start")
    -- the same instant in another offset is not before
    assert.equals("2024-01-01T01:00:00+01:00/2024-01-01T00:00:00Z",
      timespan.format { start = "2024-01-01T01:00:00+01:00", finish = "2024-01-01T00:00:00Z" })
    assert.has_error(function() timespan.format("2024-01-02T00:00:00Z/2024-01-01T00:00:00Z") end)
    assert.has_error(function()
      helper.client():query("Heartbeat", { timespan = { start = 2, finish = 1 } })
    end)
  end)

  it("round to microseconds, carrying into seconds, minutes, hours, days, months and years", function()
    -- 2023-12-31T23:59:59.9999996Z: every field carries
    assert.equals("2024-01-01T00:00:00Z/PT1S", timespan.format { start = 1704067199.9999996, duration = 1 })
    assert.equals("2024-01-01T00:00:01Z/PT1S", timespan.format { start = 1704067200.9999996, duration = 1 })
    assert.equals("2024-03-01T00:00:00Z/PT1S", timespan.format { start = 1709251199.9999996, duration = 1 })
    assert.equals("PT60S", timespan.format(59.9999999))
    assert.equals("PT1S", timespan.format(0.9999999))
    assert.equals("PT1.5S", timespan.format(1.4999999))
    -- rounding past 9999-12-31T23:59:59 is out of range, not year 10000
    assert.has_error(function() timespan.format { start = 253402300799.9999999, duration = 1 } end)
  end)
end)

describe("JSON the module decodes on its own (error bodies, the Azure CLI's answer)", function()
  local core = require "loganalytics.core"

  it("is one value and nothing after it but blanks", function()
    assert.same({ a = 1 }, core.decode_json('{"a":1}'))
    assert.same({ a = 1 }, core.decode_json('{"a":1} \r\n\t'))
    for _, text in ipairs { '{"a":1} trailing', '{"a":1}{}', '[1,2]]', '{"error":{}}<html>' } do
      local value, err = core.decode_json(text)
      assert.is_nil(value, text)
      assert.equals("invalid JSON", err)
    end
  end)

  it("so an error body with a JSON prefix is shown as text, not read as the service's error", function()
    local errors = require "loganalytics.errors"
    local e = errors.from_http(502, {}, '{"error":{"code":"Fake","message":"m"}} <p>gateway</p>')
    assert.is_nil(e.code)
    assert.truthy(e.message:find("HTTP 502", 1, true), e.message)
  end)
end)
