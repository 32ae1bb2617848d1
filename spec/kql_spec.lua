-- la.kql: hostile values made into literals, sent in real queries to the
-- local server, whose KQL subset reads literals as Kusto.Language does
-- (server/la_server.py: scan_string, Parser.literal). Each value must come
-- back as ONE literal holding the EXACT bytes given, or be refused with a
-- clear error; nothing may be altered on the way.
local helper = require "helper"
local la = require "loganalytics"
local kql = la.kql

-- UTF-8 for a code point, written here (Lua 5.1 has no "\u{...}").
local function u(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
                     0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

local function control_characters()
  local out = {}
  for b = 1, 31 do out[#out + 1] = string.char(b) end
  return table.concat(out) .. "\127"
end

local function printable_ascii()
  local out = {}
  for b = 32, 126 do out[#out + 1] = string.char(b) end
  return table.concat(out)
end

-- name -> value; every one valid UTF-8 without NUL
local HOSTILE = {
  { "double quote", '"' },
  { "single quote", "'" },
  { "backtick", "`" },
  { "multi-line fence", "```" },
  { "multi-line fence around text", "```x```" },
  { "tilde fence", "~~~" },
  { "backslash", "\\" },
  { "trailing backslash", "abc\\" },
  { "backslash quote", '\\"' },
  { "two backslashes and a quote", '\\\\"' },
  { "escapes as text", "\\n\\t\\u0041\\x41\\101\\U0001F600" },
  { "pipe and operator", "x | take 1" },
  { "semicolon", "a; print 1" },
  { "comment", "// a comment" },
  { "quote then comment", '" // ' },
  { "quote, pipe, new operator", '" | where 1 == 1 | project v = "' },
  { "single quote, pipe", "' | take 0 | project v = '" },
  { "splicing two literals", '" "' },
  { "newline", "a\nb" },
  { "carriage return", "a\rb" },
  { "CR LF", "\r\n" },
  { "tab", "a\tb" },
  { "every control character", control_characters() },
  { "printable ASCII", printable_ascii() },
  { "h prefix inside", 'h"secret"' },
  { "H prefix, single quotes", "H'x'" },
  { "verbatim inside", '@"a""b"' },
  { "verbatim single inside", "@'a''b'" },
  { "placeholder", "{1}" },
  { "braces", "{{}}{" },
  { "bracketed name", "['x']" },
  { "dynamic-looking", 'dynamic({"a":1})' },
  { "empty", "" },
  { "spaces", "   " },
  { "BMP", "h" .. u(0xE9) .. "llo w" .. u(0xF6) .. "rld " .. u(0x2014) .. " " .. u(0x2713) .. " "
      .. u(0x4E2D) .. u(0x6587) },
  { "astral", u(0x1F600) .. u(0x1D11E) .. u(0x10FFFF) },
  { "right-to-left", u(0x202E) .. "evil" .. u(0x202C) .. " " .. u(0x5E2) .. u(0x5D1) .. " "
      .. u(0x627) .. u(0x644) },
  { "line separators", u(0x2028) .. u(0x2029) .. u(0x85) },
  { "BOM and zero width", u(0xFEFF) .. u(0x200B) .. u(0x200D) },
  { "replacement character", u(0xFFFD) },
  { "C1 controls", u(0x80) .. u(0x9F) },
}

local INVALID_UTF8 = {
  { "a lone byte 0xFF", "a\255b" },
  { "a stray continuation byte", "\128" },
  { "an overlong '/'", "\192\175" },
  { "a surrogate", "\237\160\128" },
  { "above U+10FFFF", "\244\144\128\128" },
  { "a truncated sequence", "\226\130" },
}

-- The query's one row and one column: the value and the column.
local function one_cell(client, query)
  local result, err = client:query(query)
  assert(result, ("query failed: %s\nquery: %s"):format(tostring(err), query))
  local tbl = result.tables[1]
  assert.equals(1, #tbl.columns, "columns of " .. query)
  assert.equals(1, #tbl.rows, "rows of " .. query)
  return tbl.rows[1][1], tbl.columns[1]
end

-- f(...) must raise this module's misuse, its message matching `pattern`.
local function refused(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "no error, wanted one matching " .. pattern)
  assert(type(err) == "string" and err:find("^loganalytics: kql%.") and err:find(pattern),
         ("wanted an error matching %q, got: %s"):format(pattern, tostring(err)))
end

describe("la.kql", function()
  local client

  setup(function()
    client = helper.client()
  end)

  describe("string", function()
    -- one test a value: each can fail on its own
    for _, case in ipairs(HOSTILE) do
      local name, value = case[1], case[2]
      it("carries " .. name .. " as one string literal with its exact bytes", function()
        local got, column = one_cell(client, "print v = " .. kql.string(value))
        assert.equals(value, got)
        assert.equals("v", column.name)
        assert.equals("string", column.type)
      end)
    end

    -- repeat runs (valgrind, ASan, other runtimes) check every third value
    -- here: the tests above send them all
    for i = 1, #HOSTILE, os.getenv("LA_REPEAT_RUN") and 3 or 1 do
      local name, value = HOSTILE[i][1], HOSTILE[i][2]
      it("keeps " .. name .. " inside its literal wherever the template puts it", function()
        -- compared with itself: one row; with the data: none (a value that
        -- broke out would be a syntax error or different rows)
        assert.equals(value, (one_cell(client, kql.format("print v = {1} | where v == {1}", value))))
        assert.equals(value, (one_cell(client, kql.format("print v = {1} | where v in ({2})", value,
                                                          { "other", value }))))
        assert.equals(0, (one_cell(client, kql.format("Heartbeat | where Computer == {1} | count", value))))
        local query = kql.format("Heartbeat | where Computer in ({1}) | summarize n = count() by Computer",
                                 { "WIN-SRV-01", value })
        local result, err = client:query(query)
        assert(result, tostring(err))
        assert.equals(1, #result.tables[1].rows)
        assert.equals("WIN-SRV-01", result.tables[1].rows[1].Computer)
      end)
    end

    it("never reads a value as a template: {n} inside a value stays text", function()
      local result = assert(client:query(kql.format("print a = {1}, b = {2}, c = {3}", "{2}", "{{x}}", "{3:ident}")))
      local row = result.tables[1].rows[1]
      assert.same({ "{2}", "{{x}}", "{3:ident}" }, { row[1], row[2], row[3] })
    end)

    it("carries 100 KB of mixed hostile text exactly", function()
      local parts = {}
      for _, case in ipairs(HOSTILE) do parts[#parts + 1] = case[2] end
      local chunk = table.concat(parts, "|")
      local pieces, size = {}, 0
      while size < 100 * 1024 do
        pieces[#pieces + 1] = chunk
        size = size + #chunk
      end
      local value = table.concat(pieces)
      local got = one_cell(client, kql.format("print v = {1}", value))
      assert.equals(#value, #got)
      assert.is_true(value == got, "the 100 KB value came back altered")
    end)

    it("refuses a NUL byte, naming it", function()
      refused("kql%.string: the value contains a NUL byte", kql.string, "a\0b")
      refused("kql%.format: argument 1 contains a NUL byte", kql.format, "print v = {1}", "\0")
    end)

    it("refuses invalid UTF-8, naming it", function()
      for _, case in ipairs(INVALID_UTF8) do
        refused("kql%.string: the value is not valid UTF%-8", kql.string, case[2])
        refused("kql%.format: argument 1 is not valid UTF%-8", kql.format, "{1}", case[2])
      end
    end)

    it("refuses what is not a string", function()
      for _, v in ipairs { 1, true, {}, la.null, print } do
        refused("must be a string, got " .. type(v), kql.string, v)
      end
      refused("must be a string, got nil", kql.string)
    end)
  end)

  describe("ident", function()
    it("names a column exactly, whatever the name", function()
      for _, name in ipairs { "my col", "a]b", "it's", "a]'b\\", "']", "where", "by", "1day",
                              "print_0", '["x"]', "h'x'", u(0xFC) .. "n" .. u(0xEF) .. "c" .. u(0xF6) .. "d" .. u(0xE9),
                              u(0x1F600), "a|b;c//d" } do
        local value, column = one_cell(client, kql.format("print {1:ident} = 1 | project {1:ident}", name))
        assert.equals(name, column.name)
        assert.equals(1, value)
        assert.equals(kql.ident(name), kql.format("{1:ident}", name))
      end
    end)

    it("refuses what no name can be", function()
      refused("kql%.ident: the name is empty", kql.ident, "")
      refused("control character", kql.ident, "a\nb")
      refused("control character", kql.ident, "a\tb")
      refused("NUL", kql.ident, "a\0b")
      refused("not valid UTF%-8", kql.ident, "\255")
      refused("must be a string", kql.ident, 1)
    end)
  end)

  describe("datetime", function()
    local CASES = {
      { 0, "1970-01-01T00:00:00Z" },
      { 1704164645.5, "2024-01-02T03:04:05.5Z" },
      { 1e9 + 0.1234567, "2001-09-09T01:46:40.1234567Z" },
      { 951782400, "2000-02-29T00:00:00Z" },
      { -1.25, "1969-12-31T23:59:58.75Z" },
      { -62135596800, "0001-01-01T00:00:00Z" },
      { 253402300799, "9999-12-31T23:59:59Z" },
      { 59.99999996, "1970-01-01T00:01:00Z" },  -- rounds to the next minute
      { "2024-02-29T23:59:59.1234567Z", "2024-02-29T23:59:59.1234567Z" },
      { "2024-01-02T03:04:05.5000Z", "2024-01-02T03:04:05.5Z" },
      { "2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z" },
      { "2024-01-02", "2024-01-02T00:00:00Z" },
      { "0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z" },
      { "9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.9999999Z" },
    }

    it("gives the server the same instant, to 100 ns", function()
      for _, case in ipairs(CASES) do
        local value, column = one_cell(client, "print d = " .. kql.datetime(case[1]))
        assert.equals(case[2], value, tostring(case[1]))
        assert.equals("datetime", column.type)
        assert.equals(value, (one_cell(client, kql.format("print d = {1:datetime}", case[1]))))
      end
    end)

    it("refuses junk and what KQL cannot hold", function()
      for _, v in ipairs { "2023-02-29", "2024-13-01", "2024-01-02T24:00:00Z", "2024-01-02T03:04:60Z",
                           "2024-01-02T03:04:05", "2024-01-02T03:04:05+01:00", "2024-01-02T03:04:05.12345678Z",
                           "2024-01-02T03:04:05.Z", "2024-01-02T03:04:0512Z", "0000-01-01", "2024-1-2",
                           " 2024-01-02", "2024-01-02) | take 1 | print (", "now", "", "2024-01-02\0" } do
        refused(v:find("%z") and "NUL" or "must be epoch seconds or an ISO 8601 UTC date%-time", kql.datetime, v)
      end
      for _, v in ipairs { 0 / 0, math.huge, -math.huge, -62135596801, 253402300800 } do
        refused("outside KQL's datetimes", kql.datetime, v)
      end
      refused("must be epoch seconds or an ISO 8601 string, got boolean", kql.datetime, true)
      refused("write datetime%(null%)", kql.datetime, la.null)
    end)
  end)

  describe("timespan", function()
    local CASES = {
      { 1.5, "00:00:01.5000000" },
      { 0, "00:00:00" },
      { 86400, "1.00:00:00" },
      { -93784.5, "-1.02:03:04.5000000" },
      { 1e-7, "00:00:00.0000001" },
      { -0.25, "-00:00:00.2500000" },
      { 1e9, "11574.01:46:40" },
      { 3599.99999999, "01:00:00" },
    }

    it("gives the server the same span, to 100 ns", function()
      for _, case in ipairs(CASES) do
        local value, column = one_cell(client, "print t = " .. kql.timespan(case[1]))
        assert.equals(case[2], value, tostring(case[1]))
        assert.equals("timespan", column.type)
      end
    end)

    it("refuses what is no number of seconds a timespan holds", function()
      for _, v in ipairs { 0 / 0, math.huge, -math.huge, 1e12, -1e12 } do
        refused("kql%.timespan: the value is not a number of seconds a KQL timespan can hold", kql.timespan, v)
      end
      refused("must be a number of seconds, got string", kql.timespan, "PT1H")
      refused("write time%(null%)", kql.timespan, la.null)
    end)
  end)

  describe("dynamic", function()
    local function server_json(value)
      local text, column = one_cell(client, "print d = " .. kql.dynamic(value))
      assert.equals("dynamic", column.type)
      return text
    end

    it("gives the server the same JSON value", function()
      -- the server writes back what it read with Python's json.dumps (compact,
      -- keys in the order read): an independent reading of the literal
      assert.equals('{"a":[1,2.5,"x\\"y\\n"],"b":null,"c":true,"d":[],"e":{"f":false}}',
                    server_json { a = { 1, 2.5, 'x"y\n' }, b = la.null, c = true, d = {}, e = { f = false } })
      assert.equals("[-7,0.1,1e+300,5e-324,-2.5]", server_json { -7, 0.1, 1e300, 5e-324, -2.5 })
      assert.equals('"' .. u(0x1F600) .. '|\\\\|\'"', server_json(u(0x1F600) .. "|\\|'"))
      assert.equals(la.null, server_json(la.null))  -- dynamic(null): a null cell
      if helper.has_integers then
        -- exact integers, and floats that stay reals
        assert.equals("[9007199254740993,9223372036854775807,-9223372036854775808,5.0]",
                      server_json { 9007199254740993, math.maxinteger, math.mininteger, 5.0 })
      end
    end)

    it("carries each hostile string exactly, as a value and as a key", function()
      local decode = require("loganalytics.core").decode_json
      for _, case in ipairs(HOSTILE) do
        local doc = decode(server_json { [case[2] == "" and "empty" or case[2]] = { case[2] } })
        local key, list = next(doc)
        assert.equals(case[2] == "" and "empty" or case[2], key, case[1])
        assert.equals(case[2], list[1], case[1])
      end
    end)

    it("refuses values JSON has no form for", function()
      local cycle = {}
      cycle.again = { cycle }
      refused("value%[1%] is NaN or infinite", kql.dynamic, { 0 / 0 })
      refused("value%.a is NaN or infinite", kql.dynamic, { a = math.huge })
      refused("value%.again%[1%] is a table that contains itself", kql.dynamic, cycle)
      refused("value mixes string keys and array indexes", kql.dynamic, { 1, x = 2 })
      refused("value is an array with holes", kql.dynamic, { 1, nil, 3 })
      refused("value has a key that is neither a string nor an array index: 1%.5", kql.dynamic, { [1.5] = 1 })
      refused("value has a key that is neither a string nor an array index: true", kql.dynamic, { [true] = 1 })
      refused("value%[1%] is a function", kql.dynamic, { print })
      refused("value%[1%] contains a NUL byte", kql.dynamic, { "\0" })
      refused("value%.k is not valid UTF%-8", kql.dynamic, { k = "\255" })
      refused("is a key that is not valid UTF%-8", kql.dynamic, { ["\255"] = 1 })
      refused("value is nil", kql.dynamic, nil)
    end)
  end)

  describe("format", function()
    it("types {n} from the Lua value, exactly", function()
      local reals = { 0.1, 0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308, -2.5, 1e300 }
      for _, x in ipairs(reals) do
        local value, column = one_cell(client, kql.format("print r = {1}", x))
        assert.equals("real", column.type)
        assert.is_true(x == value, ("%.17g came back as %.17g"):format(x, value))
      end
      local result = assert(client:query(kql.format("print s = {1}, n = {2}, b = {3}, f = {4}, nan = {5}, inf = {6}",
                                                    "text", 42, true, false, 0 / 0, -math.huge)))
      local tbl = result.tables[1]
      local types = {}
      for j, column in ipairs(tbl.columns) do types[j] = column.type end
      assert.same({ "string", "long", "bool", "bool", "real", "real" }, types)
      local row = tbl.rows[1]
      assert.equals("text", row.s)
      assert.equals(42, row.n)
      assert.is_true(row.b)
      assert.is_false(row.f)
      assert.is_true(row.nan ~= row.nan)
      assert.equals(-math.huge, row.inf)
      -- an integer is its digits, where KQL wants a number as much as in an expression
      assert.equals(3, #assert(client:query(kql.format("Heartbeat | take {1}", 3))).tables[1].rows)
      assert.equals(-7, (one_cell(client, kql.format("print n = {1}", -7))))
      if helper.has_integers then
        assert.equals(math.maxinteger, (one_cell(client, kql.format("print n = {1}", math.maxinteger))))
        assert.equals(math.mininteger, (one_cell(client, kql.format("print n = {1}", math.mininteger))))
      end
    end)

    it("writes a list as its elements' literals, each typed, for in (...)", function()
      assert.equals('Id in ("a", 2, real(2.5), true)', kql.format("Id in ({1})", { "a", 2, 2.5, true }))
      assert.equals('T in (datetime(1970-01-01T00:00:00Z), datetime(2024-01-02T00:00:00Z))',
                    kql.format("T in ({1:datetime})", { 0, "2024-01-02" }))
      assert.equals("dynamic([1,2])", kql.format("{1:dynamic}", { 1, 2 }))
      assert.equals("{x} {1} }{", kql.format("{{x}} {{{1}}} }}{{", 1))
    end)

    it("gives typed nulls for la.null in a typed placeholder", function()
      assert.equals("datetime(null), time(null), long(null), real(null), dynamic(null)",
                    kql.format("{1:datetime}, {1:timespan}, {1:long}, {1:real}, {1:dynamic}", la.null))
      local value = one_cell(client, kql.format("print d = {1:datetime}", la.null))
      assert.equals(la.null, value)
    end)

    it("raises on misuse, saying what is wrong", function()
      refused("kql%.format: {2} is out of range: 1 argument given", kql.format, "{2}", 1)
      refused("{1} is out of range: 0 arguments given", kql.format, "{1}")
      refused("{0} is out of range", kql.format, "{0}", 1)
      refused("argument 2 is not used by the template", kql.format, "{1}", 1, 2)
      refused("argument 1 is not used by the template", kql.format, "print 1", "x")
      refused("unknown type 'foo' in {1:foo}", kql.format, "{1:foo}", 1)
      refused("unknown type '' in {1:}", kql.format, "{1:}", 1)
      refused("a stray '{' at byte 1", kql.format, "{x}", 1)
      refused("a stray '{' at byte 3", kql.format, "a {1", 1)
      refused("a stray '{' at byte 1", kql.format, "{ 1}", 1)
      refused("a stray '}' at byte 3 of the template", kql.format, "a } b")
      refused("argument 1 is nil", kql.format, "{1}", nil)
      refused("argument 2 is nil", kql.format, "{1}{2}", 1, nil)
      refused("argument 1 is la%.null: give the placeholder a type", kql.format, "{1}", la.null)
      refused("argument 1 is a table that is not a list", kql.format, "{1}", {})
      refused("argument 1 is a table that is not a list", kql.format, "{1}", { a = 1 })
      refused("argument 1%[1%] is a table", kql.format, "{1}", { { 1 } })
      refused("argument 1 is a function, which has no KQL literal", kql.format, "{1}", print)
      refused("argument 1 is not a whole number a long can hold", kql.format, "{1:long}", 1.5)
      refused("argument 1 must be a string, got number", kql.format, "{1:string}", 1)
      refused("argument 1 is empty", kql.format, "{1:ident}", "")
      refused("argument 1 must be epoch seconds or an ISO 8601", kql.format, "{1:datetime}", "yesterday")
      refused("argument 1%[2%] must be a string", kql.format, "{1:string}", { "a", 2 })
      refused("argument 1 is la%.null", kql.format, "{1:string}", la.null)
      refused("the template must be a string, got number", kql.format, 1)
    end)
  end)
end)
