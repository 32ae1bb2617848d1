-- Cell values by column type, from the raw fixture bodies the local server
-- serves for the FIXTURES workspace (spec/fixtures/<name>.json).
local helper = require "helper"
local la = require "loganalytics"
local core = require "loganalytics.core"

local null = la.null

local client

local function fixture(name)
  client = client or helper.client { workspace = "FIXTURES" }
  local result, err = client:query(name)
  assert(result, "fixture " .. name .. " failed: " .. tostring(err))
  return result
end

local function only_table(name)
  local result = fixture(name)
  assert.are.equal(1, #result.tables)
  return result.tables[1]
end

local function column(tbl, j)
  local out = {}
  for r, row in ipairs(tbl.rows) do out[r] = row[j] end
  return out
end

local function assert_integer(expected, got)
  assert(math.type(got) == "integer",
    ("expected integer %s, got %s %s"):format(tostring(expected), math.type(got) or type(got), tostring(got)))
  assert.are.equal(expected, got)
end

local function assert_float(expected, got)
  -- without an integer subtype (5.1, 5.2, LuaJIT) 3.0 and 3 are one value
  local kind = helper.has_integers and math.type(got) or type(got)
  assert(kind == (helper.has_integers and "float" or "number"),
    ("expected float %s, got %s %s"):format(tostring(expected), math.type(got) or type(got), tostring(got)))
  assert.are.equal(expected, got)
end

-- A long given by its exact decimal text: an integer on Lua 5.3+; where
-- numbers are doubles, a number within 2^53 and the exact string beyond.
local function assert_long(text, got)
  if helper.has_integers then
    return assert_integer(math.tointeger(tonumber(text)), got)
  end
  -- compared as text: the double of 9007199254740993 is 2^53 itself
  local digits = text:gsub("^%-", "")
  local limit = "9007199254740992"
  if #digits > #limit or (#digits == #limit and digits > limit) then
    assert.are.equal(text, got)
  else
    assert_integer(tonumber(text), got)
  end
end

describe("cell types", function()
  describe("long and int columns", function()
    local tbl
    setup(function() tbl = only_table("long_extremes") end)

    it("give 9223372036854775807 exactly as math.maxinteger", function()
      if helper.has_integers then assert_integer(math.maxinteger, tbl.rows[1][1]) end
      assert_long("9223372036854775807", tbl.rows[1].max)
    end)

    it("give -9223372036854775808 exactly as math.mininteger", function()
      if helper.has_integers then assert_integer(math.mininteger, tbl.rows[1][2]) end
      assert_long("-9223372036854775808", tbl.rows[1].min)
    end)

    it("give 9007199254740993 exactly, beyond what a double holds", function()
      assert_long("9007199254740993", tbl.rows[1].beyond_double)
      assert.are_not.equal(9007199254740992, tbl.rows[1].beyond_double)
    end)

    it("give int extremes as integers", function()
      assert_integer(2147483647, tbl.rows[1].int_max)
      assert_integer(-2147483648, tbl.rows[2].int_max)
    end)

    it("give string-encoded longs as exact integers", function()
      assert_long("9223372036854775807", tbl.rows[1].as_string)
      assert_long("-9007199254740993", tbl.rows[1].negative_string)
      assert_integer(42, tbl.rows[2].as_string)
    end)

    it("give an integral number written with an exponent as an integer", function()
      assert_integer(1000, tbl.rows[1].exponent)
    end)

    it("give small values and nulls", function()
      assert_integer(0, tbl.rows[2].max)
      assert_integer(-1, tbl.rows[2].min)
      assert.are.equal(null, tbl.rows[2].beyond_double)
      assert.are.equal(null, tbl.rows[2].negative_string)
      assert.are.equal(null, tbl.rows[2].exponent)
    end)
  end)

  describe("real columns", function()
    local values
    setup(function() values = column(only_table("reals"), 1) end)

    it("give \"NaN\" as a float nan", function()
      assert.are.equal("float", math.type(values[1]))
      assert.is_true(values[1] ~= values[1])
    end)

    it("give \"Infinity\" and \"-Infinity\" as float infinities", function()
      assert_float(math.huge, values[2])
      assert_float(-math.huge, values[3])
    end)

    it("give plain and string-encoded numbers as floats", function()
      assert_float(1.5, values[4])
      assert_float(2.25, values[5])
      assert_float(3.0, values[6])
      assert_float(1e308, values[7])
      assert_float(-0.000001, values[8])
    end)

    it("give null as la.null", function()
      assert.are.equal(null, values[9])
      assert.are.equal(9, #values)
    end)
  end)

  describe("bool columns", function()
    it("give booleans from true/false, 0/1 and any-case strings", function()
      local tbl = only_table("bools")
      local expected = { true, false, true, false, true, false, true, null }
      assert.are.equal(#expected, #tbl.rows)
      for r, want in ipairs(expected) do
        assert(tbl.rows[r].flag == want and type(tbl.rows[r].flag) == type(want),
          ("row %d (%s): expected %s, got %s"):format(r, tbl.rows[r].label, tostring(want),
            tostring(tbl.rows[r].flag)))
      end
    end)
  end)

  describe("string columns", function()
    it("decode \\u escapes, surrogate pairs and raw UTF-8 into the right bytes", function()
      local tbl = only_table("escapes")
      assert.is_true(#tbl.rows > 0)
      for r, row in ipairs(tbl.rows) do
        assert.are.equal(row.expected_hex, helper.hex(row.text), "row " .. r)
      end
    end)
  end)

  describe("tables", function()
    it("keep two tables with the same name, in order", function()
      local result = fixture("duplicate_names")
      assert.are.equal(2, #result.tables)
      assert.are.equal("PrimaryResult", result.tables[1].name)
      assert.are.equal("PrimaryResult", result.tables[2].name)
      assert.are.equal("a", result.tables[1].columns[1].name)
      assert.are.equal("b", result.tables[2].columns[1].name)
      assert_integer(1, result.tables[1].rows[1].a)
      assert_integer(2, result.tables[1].rows[2].a)
      assert.are.equal("x", result.tables[2].rows[1].b)
    end)

    it("give an empty rows table for empty rows, with the columns kept", function()
      local tbl = only_table("empty_rows")
      assert.is_table(tbl.rows)
      assert.are.equal(0, #tbl.rows)
      assert.is_nil(next(tbl.rows))
      assert.are.same({ { name = "TimeGenerated", type = "datetime" }, { name = "Computer", type = "string" } },
        tbl.columns)
    end)

    it("refuse a row shorter than its columns: #row == #columns always", function()
      client = client or helper.client { workspace = "FIXTURES" }
      local result, err = client:query("bad_short_rows")
      assert.is_nil(result)
      assert.equals("protocol", err.kind)
      assert.matches("fewer cells than its table has columns", err.message)
    end)

    it("give rows of one table a single shared metatable for row.Name access", function()
      local tbl = only_table("bools")
      local mt = getmetatable(tbl.rows[1])
      assert.is_not_nil(mt)
      for r = 2, #tbl.rows do assert.are.equal(mt, getmetatable(tbl.rows[r])) end
      assert.are.equal(tbl.rows[3][2], tbl.rows[3].label)
      assert.are.equal("one", tbl.rows[3].label)
      assert.is_nil(tbl.rows[3].no_such_column)
    end)
  end)

  describe("partial results", function()
    local result
    setup(function() result = fixture("partial") end)

    it("have status 'partial' and keep the rows", function()
      assert.are.equal("partial", result.status)
      local tbl = result.tables[1]
      assert.are.equal(2, #tbl.rows)
      assert.are.equal("web-01", tbl.rows[1].Computer)
      assert_integer(120, tbl.rows[1].count_)
      assert.are.equal("web-02", tbl.rows[2].Computer)
      assert_integer(98, tbl.rows[2].count_)
    end)

    it("carry the service error as result.error with kind, code and details", function()
      local e = result.error
      assert.is_table(e)
      assert.are.equal("service", e.kind)
      assert.are.equal("PartialError", e.code)
      assert.are.equal("There were some errors when processing your query.", e.message)
      assert.are.equal("b2a4f1e0-4d5c-4a8e-9a6b-7f1f2d3c4b5a", e.correlation_id)
      assert.is_table(e.details)
      assert.are.equal("EngineError", e.details[1].code)
      assert.are.equal(
        "Query result set has exceeded the internal data size limit 64000000 bytes (E_QUERY_RESULT_SET_TOO_LARGE).",
        e.details[1].innererror.message)
      assert_integer(2, e.details[1].innererror.severity)
      local text = tostring(e)
      assert.truthy(text:find("PartialError", 1, true), text)
    end)
  end)

  describe("dynamic columns", function()
    local tbl
    setup(function() tbl = only_table("dynamic_values") end)

    it("give a string value as the string sent", function()
      assert.are.equal('{"a":1}', tbl.rows[1].d)
      assert.are.equal("plain text", tbl.rows[7].d)
    end)

    it("give nested objects and arrays as compact JSON text with exact numbers", function()
      assert.are.equal('{"nested":{"list":[1,2.50,"x\\"y",true,null]},"big":9223372036854775807}',
        tbl.rows[2].d)
      assert.are.equal("[1,[2,[3]]]", tbl.rows[3].d)
    end)

    it("give numbers and booleans as their JSON text", function()
      assert.are.equal("12.50", tbl.rows[4].d)
      assert.are.equal("true", tbl.rows[5].d)
    end)

    it("give null as la.null", function()
      assert.are.equal(null, tbl.rows[6].d)
    end)

    it("keep the next column intact after a nested value", function()
      for r = 1, 7 do assert_integer(r, tbl.rows[r].n) end
    end)
  end)

  describe("every type, string-encoded and plain", function()
    local tbl
    setup(function() tbl = only_table("all_types") end)

    it("converts the string-encoded row as the type table says", function()
      local row = tbl.rows[1]
      assert.are.equal(true, row.b)
      assert_integer(12, row.i)
      assert_integer(34, row.l)
      assert_float(1.286, row.r)
      assert.are.equal("0.10101", row.dec)
      assert.are.equal("2017-08-24T06:59:59Z", row.dt)
      assert.are.equal("00:00:10", row.ts)
      assert.are.equal("74be27de-1e4e-49d9-b579-fe0b331d3642", row.g)
      assert.are.equal("text", row.s)
      assert.are.equal('{"k":[1,2]}', row.dyn)
    end)

    it("converts the plain JSON row, keeping decimals and datetimes as sent", function()
      local row = tbl.rows[2]
      assert.are.equal(false, row.b)
      assert_integer(12, row.i)
      assert_integer(34, row.l)
      assert_float(1.286, row.r)
      assert.are.equal("0.10101", row.dec)
      assert.are.equal("2017-08-24T06:59:59.1234567Z", row.dt)
      assert.are.equal("1.02:03:04.5", row.ts)
      assert.are.equal("00000000-0000-0000-0000-000000000000", row.g)
      assert.are.equal("", row.s)
      assert.are.equal("[]", row.dyn)
    end)

    it("gives la.null for a null of every type", function()
      local row = tbl.rows[3]
      assert.are.equal(10, #row)
      for j = 1, 10 do assert.are.equal(null, row[j], tbl.columns[j].name) end
    end)
  end)

  describe("la.null", function()
    it("is a light userdata equal to the cells' null", function()
      assert.are.equal("userdata", type(la.null))
      -- light userdata compare by pointer: a freshly decoded null is the same value
      assert.are.equal(la.null, core.decode_json("null"))
      assert.is_nil(getmetatable(la.null))
      local row = only_table("cli_cells").rows[3]
      local found
      for j = 1, #row do if row[j] == la.null then found = row[j] end end
      assert.are.equal(la.null, found)
      assert.are.equal("userdata", type(found))
    end)
  end)

  describe("chunked transfer", function()
    -- deep equality that also checks integer/float subtypes and treats nan as equal
    local function same(a, b, path)
      if type(a) ~= type(b) then
        return false, ("%s: %s vs %s"):format(path, type(a), type(b))
      end
      if type(a) == "number" then
        if math.type(a) ~= math.type(b) then return false, path .. ": number subtypes differ" end
        if a ~= b and not (a ~= a and b ~= b) then return false, path .. ": " .. a .. " vs " .. b end
        return true
      end
      if type(a) ~= "table" then
        return a == b, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
      end
      if getmetatable(a) == nil ~= (getmetatable(b) == nil) then return false, path .. ": metatables" end
      for k, v in pairs(a) do
        local ok, why = same(v, b[k], path .. "." .. tostring(k))
        if not ok then return false, why end
      end
      for k in pairs(b) do
        if a[k] == nil then return false, path .. "." .. tostring(k) .. " only when chunked" end
      end
      return true
    end

    local names = {}
    local pipe = assert(io.popen("ls -1 spec/fixtures"))
    for file in pipe:lines() do
      local name = file:match("^([%w_.-]+)%.json$")
      if name then names[#names + 1] = name end
    end
    pipe:close()

    it("has fixtures to compare", function()
      assert.is_true(#names > 0)
    end)

    for _, name in ipairs(names) do
      it("gives the same outcome for " .. name .. " in 7-byte gzip chunks", function()
        local c = helper.client { workspace = "FIXTURES" }
        local plain, plain_err = c:query(name)
        local chunked, chunked_err = c:query("chunked:" .. name)
        if plain then
          assert(chunked, "chunked failed: " .. tostring(chunked_err))
          plain.request_id, chunked.request_id = nil, nil
          if type(plain.error) == "table" then plain.error.request_id, chunked.error.request_id = nil, nil end
          local ok, why = same(plain, chunked, "result")
          assert(ok, why)
        else
          assert.is_nil(chunked)
          assert.is_table(chunked_err)
          assert.are.equal(plain_err.kind, chunked_err.kind)
          assert.are.equal(plain_err.status, chunked_err.status)
          assert.are.equal(plain_err.code, chunked_err.code)
        end
      end)
    end
  end)
end)
