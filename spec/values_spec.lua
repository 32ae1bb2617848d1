-- Values the way users want them (issue 15): the `datetime` and `dynamic`
-- options, la.datetime and la.iso8601. Every datetime and dynamic cell of
-- every fixture (spec/fixtures/*.json, spec/fixtures/datetimes.json among
-- them) and of every recording (spec/fixtures/recorded) is checked against
-- references written here in Lua, independent of the C core: the calendar
-- by counting days, JSON by a small exact decoder.
local helper = require "helper"
local la = require "loganalytics"
local core = require "loganalytics.core"

local null = la.null
local has_integers = helper.has_integers
local floor = math.floor

------------------------------------------------------------ references

local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local function is_leap(y) return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) end

-- Days from 0001-01-01 to y-m-d, counted: whole years, then months.
local function days_since_year1(y, m, d)
  local p = y - 1
  local n = 365 * p + floor(p / 4) - floor(p / 100) + floor(p / 400)
  for i = 1, m - 1 do n = n + MONTH_DAYS[i] + ((i == 2 and is_leap(y)) and 1 or 0) end
  return n + d - 1
end
local DAYS_TO_1970 = days_since_year1(1970, 1, 1)  -- 719162

-- The service's datetime text read by hand: { days, seconds, fraction in
-- 100 ns } or nil when it is not one.
local function ref_parse(text)
  local y, mo, d, h, mi, s, rest =
    text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local fraction = 0
  if rest ~= "Z" then
    local f = rest:match("^%.(%d+)Z$")
    if not f or #f > 7 then return nil end
    fraction = tonumber(f .. ("0"):rep(7 - #f))
  end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if y < 1 or mo < 1 or mo > 12 or d < 1 or h > 23 or mi > 59 or s > 59 then return nil end
  if d > MONTH_DAYS[mo] + ((mo == 2 and is_leap(y)) and 1 or 0) then return nil end
  return { days = days_since_year1(y, mo, d), seconds = (h * 60 + mi) * 60 + s, fraction = fraction }
end

-- What a datetime cell's text becomes in mode (the text itself when it is
-- not a datetime).
local function ref_datetime(text, mode)
  local t = type(text) == "string" and ref_parse(text)
  if not t then return text end
  local since_1970 = (t.days - DAYS_TO_1970) * 86400 + t.seconds  -- whole seconds
  if mode == "epoch" then return since_1970 + t.fraction / 1e7 end
  if mode == "epoch_ms" then return since_1970 * 1000 + floor(t.fraction / 10000) end
  assert(mode == "ticks")
  return (t.days * 86400 + t.seconds) * 10000000 + t.fraction
end

local TWO_53 = 9007199254740992

-- A JSON number as a long column gives it: integers exact (the exact text
-- beyond 2^53 where numbers are doubles), others a float.
local function ref_number(text)
  if text:match("^%-?%d+$") then
    local neg = text:sub(1, 1) == "-"
    local digits = neg and text:sub(2) or text
    local limit = neg and "9223372036854775808" or "9223372036854775807"
    if #digits < #limit or (#digits == #limit and digits <= limit) then
      if has_integers then return math.tointeger(tonumber(text)) end
      -- compared as text: the double of 9007199254740993 is 2^53 itself
      local two_53 = "9007199254740992"
      if #digits > #two_53 or (#digits == #two_53 and digits > two_53) then return text end
      return tonumber(text)
    end
    return tonumber(text .. ".0")  -- beyond 64 bits: the nearest float
  end
  local d = assert(tonumber(text))
  if d == floor(d) and d >= -2^63 and d < 2^63 then
    if has_integers then return math.tointeger(d) end
    if d > TWO_53 or d < -TWO_53 then return ("%.0f"):format(d) end
  end
  return d
end

local function utf8_char(c)
  if c < 0x80 then return string.char(c) end
  if c < 0x800 then return string.char(0xC0 + floor(c / 64), 0x80 + c % 64) end
  if c < 0x10000 then
    return string.char(0xE0 + floor(c / 4096), 0x80 + floor(c / 64) % 64, 0x80 + c % 64)
  end
  return string.char(0xF0 + floor(c / 262144), 0x80 + floor(c / 4096) % 64,
                     0x80 + floor(c / 64) % 64, 0x80 + c % 64)
end

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

-- A small exact JSON decoder: the value of text, or nil when text is not
-- one JSON value. Null is la.null; arrays and objects plain tables.
local function ref_json(text)
  local pos = 1
  local function fail() error("not JSON", 0) end
  local function ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function str()
    pos = pos + 1
    local out = {}
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail() end
      if c == '"' then pos = pos + 1 return table.concat(out) end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        if e == "u" then
          local cp = tonumber(text:sub(pos + 2, pos + 5), 16) or fail()
          pos = pos + 6
          if cp >= 0xD800 and cp < 0xDC00 and text:sub(pos, pos + 1) == "\\u" then
            local lo = tonumber(text:sub(pos + 2, pos + 5), 16) or fail()
            cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
            pos = pos + 6
          end
          out[#out + 1] = utf8_char(cp)
        else
          out[#out + 1] = ESCAPES[e] or fail()
          pos = pos + 2
        end
      elseif c:byte() < 32 then
        fail()
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
  end
  function value()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        if text:sub(pos, pos) ~= '"' then fail() end
        local k = str()
        ws()
        if text:sub(pos, pos) ~= ":" then fail() end
        pos = pos + 1
        t[k] = value()
        ws()
        local sep = text:sub(pos, pos)
        pos = pos + 1
        if sep == "}" then return t end
        if sep ~= "," then fail() end
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value()
        ws()
        local sep = text:sub(pos, pos)
        pos = pos + 1
        if sep == "]" then return t end
        if sep ~= "," then fail() end
      end
    elseif c == '"' then
      return str()
    end
    for word, v in pairs { ["true"] = true, ["false"] = false, ["null"] = null } do
      if text:sub(pos, pos + #word - 1) == word then pos = pos + #word return v end
    end
    local num = text:match("^%-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not num or num == "" or num == "-" then fail() end
    pos = pos + #num
    return ref_number(num)
  end
  local ok, v = pcall(function()
    local v = value()
    ws()
    if pos <= #text then fail() end
    return v
  end)
  if ok then return v end
  return nil
end

-- Equal values, numbers of the same subtype, tables key by key.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if has_integers and math.type(a) ~= math.type(b) then return false end
    return a == b or (a ~= a and b ~= b)
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function show(v)
  if type(v) == "number" and has_integers then return math.type(v) .. " " .. tostring(v) end
  if v == null then return "la.null" end
  return type(v) .. " " .. tostring(v)
end

------------------------------------------------------------ the sources

-- Every fixture body (spec/fixtures/*.json), by FIXTURES name.
local function fixture_names()
  local out = {}
  local pipe = assert(io.popen("ls -1 spec/fixtures"))
  for file in pipe:lines() do
    local name = file:match("^(.*)%.json$")
    if name and not name:match("^bad_") then out[#out + 1] = name end
  end
  pipe:close()
  return out
end

-- Every 2xx query response of the recordings, by REPLAY name.
local function recorded_names()
  local dir = helper.recorded_dir()
  local out = {}
  local pipe = assert(io.popen("ls -1 '" .. dir .. "'"))
  for file in pipe:lines() do
    if file:match("%.json$") then
      local doc = assert(core.decode_json(helper.read_file(dir .. "/" .. file)), file)
      for _, e in ipairs(doc.Entries or {}) do
        local uri = e.RequestUri or ""
        local body = e.ResponseBody
        if uri:find("/query", 1, true) and type(body) == "table" and body.tables then
          if (e.StatusCode or 200) < 300 then out[#out + 1] = file end
        elseif uri:find("$batch", 1, true) and type(body) == "table" and type(body.responses) == "table" then
          for i, sub in ipairs(body.responses) do
            if (sub.status or 200) < 300 and type(sub.body) == "table" and sub.body.tables then
              out[#out + 1] = file .. "#" .. (i - 1)
            end
          end
        end
      end
    end
  end
  pipe:close()
  return out
end

-- Calls f(type, got, text, where) for every cell of a column of that type.
local function each_cell(col_type, as_text, result, f)
  assert.are.equal(#as_text.tables, #result.tables)
  for t, tbl in ipairs(as_text.tables) do
    for j, col in ipairs(tbl.columns) do
      if col.type == col_type then
        for r, row in ipairs(tbl.rows) do
          f(result.tables[t].rows[r][j], row[j], ("table %d row %d column %s"):format(t, r, col.name))
        end
      end
    end
  end
end

local MODES = has_integers and { "epoch", "epoch_ms", "ticks" } or { "epoch", "epoch_ms" }

describe("values", function()
  local fixtures, replay

  setup(function()
    fixtures = helper.client { workspace = "FIXTURES" }
    replay = helper.client { workspace = "REPLAY" }
  end)

  -- Each mode on every datetime, dynamic = "decode" on every dynamic cell,
  -- of one source: a client and a query name.
  local counts = { datetimes = 0, sevens = 0, dynamics = 0, tables = 0 }
  local function check_source(client, name)
    local as_text = assert(client:query(name))
    for _, mode in ipairs(MODES) do
      local result = assert(client:query(name, { datetime = mode }))
      each_cell("datetime", as_text, result, function(got, text, where)
        local want = text == null and null or ref_datetime(text, mode)
        assert(same(want, got), ("%s %s (%s): want %s, got %s")
          :format(name, where, tostring(text), show(want), show(got)))
        if mode == "epoch" and text ~= null then
          counts.datetimes = counts.datetimes + 1
          if tostring(text):match("%.%d%d%d%d%d%d%dZ$") then counts.sevens = counts.sevens + 1 end
        end
      end)
    end
    local seen = {}
    local result = assert(client:query(name, { datetime = function(text)
      seen[#seen + 1] = text
      return "<" .. text .. ">"
    end }))
    local n = 0
    each_cell("datetime", as_text, result, function(got, text, where)
      local want = text == null and null or "<" .. text .. ">"
      if text ~= null then
        n = n + 1
        assert.are.equal(text, seen[n])  -- called with the text, in order
      end
      assert(same(want, got), ("%s %s: want %s, got %s"):format(name, where, show(want), show(got)))
    end)
    assert.are.equal(n, #seen)
    result = assert(client:query(name, { dynamic = "decode" }))
    each_cell("dynamic", as_text, result, function(got, text, where)
      local want = text
      if type(text) == "string" then
        local v = ref_json(text)
        if v ~= nil then want = v end
      end
      assert(same(want, got), ("%s %s (%s): want %s, got %s")
        :format(name, where, tostring(text), show(want), show(got)))
      counts.dynamics = counts.dynamics + 1
    end)
    counts.tables = counts.tables + #as_text.tables
  end

  it("each datetime mode and dynamic decode on every fixture and every recording equal the references", function()
    for _, name in ipairs(fixture_names()) do
      local ok = fixtures:query(name)
      if ok then check_source(fixtures, name) end
    end
    local recorded = recorded_names()
    assert.is_true(#recorded >= 5)
    for _, name in ipairs(recorded) do check_source(replay, name) end
    -- the checks above ran on real data: datetimes with 7 digits, dynamics
    assert.is_true(counts.datetimes >= 200, "datetimes checked: " .. counts.datetimes)
    assert.is_true(counts.sevens >= 3, "7-digit datetimes checked: " .. counts.sevens)
    assert.is_true(counts.dynamics >= 30, "dynamic cells checked: " .. counts.dynamics)
  end)

  it("datetimes.json: year 1 and 9999, leap days, before 1970, nulls and text that is no datetime", function()
    local by_label = {}
    local as_text = assert(fixtures:query("datetimes")).tables[1]
    local results = {}
    for _, mode in ipairs(MODES) do
      results[mode] = assert(fixtures:query("datetimes", { datetime = mode })).tables[1]
    end
    for r, row in ipairs(as_text.rows) do
      local label = row.label
      by_label[label] = r
      for mode, tbl in pairs(results) do
        local got = tbl.rows[r].t
        if row.t == null then
          assert.are.equal(null, got)
        elseif label == "invalid" or label == "a number" then
          assert.are.equal(row.t, got)  -- stays the text, in every mode
          assert.is_nil(la.datetime(row.t))
        end
      end
    end
    local function at(label, mode) return results[mode].rows[by_label[label]].t end
    assert.are.equal(0, at("the epoch", "epoch"))
    assert.are.equal(-1, at("before 1970, ms rounds down", "epoch_ms"))
    assert.are.equal(-315619200000, at("before 1970", "epoch_ms"))
    assert.are.equal(-62135596800, at("year 1", "epoch"))
    assert.are.equal(253402300799999, at("year 9999", "epoch_ms"))
    assert.are.equal(951868799999, at("leap day 2000", "epoch_ms"))
    assert.are.equal(1709164800, at("leap day 2024", "epoch"))
    if has_integers then
      assert.are.equal(0, at("year 1", "ticks"))
      assert.are.equal(0, at("year 1, 7 digits", "ticks"))
      assert.are.equal(3155378975999999999, at("year 9999", "ticks"))
      assert.are.equal(638448068961234567, at("seven digits", "ticks"))
      assert.are.equal("integer", math.type(at("the epoch", "epoch_ms")))
      assert.are.equal("float", math.type(at("the epoch", "epoch")))
    end
  end)

  it("la.datetime and la.iso8601 round-trip exact ticks and agree with the reference", function()
    if not has_integers then
      assert.has_error(function() la.datetime("2024-01-01T00:00:00Z", "ticks") end)
      assert.has_error(function() la.iso8601(0, "ticks") end)
    end
    -- random valid texts, every field's range, 7 digits: parsed to the
    -- reference's value and formatted back to the same text
    local seed = 15
    local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n end
    for _ = 1, 2000 do
      local y, m = 1 + rand(9999), 1 + rand(12)
      local d = 1 + rand(MONTH_DAYS[m] + ((m == 2 and is_leap(y)) and 1 or 0))
      local s = ("%04d-%02d-%02dT%02d:%02d:%02d.%07dZ"):format(y, m, d, rand(24), rand(60), rand(60),
        rand(10000000))
      assert(same(ref_datetime(s, "epoch"), la.datetime(s)), s)
      assert(same(ref_datetime(s, "epoch_ms"), la.datetime(s, "epoch_ms")), s)
      assert.are.equal(s:sub(1, 23) .. "0000Z", la.iso8601(la.datetime(s, "epoch_ms"), "epoch_ms"))
      if has_integers then
        local ticks = la.datetime(s, "ticks")
        assert(same(ref_datetime(s, "ticks"), ticks), s)
        assert.are.equal(s, la.iso8601(ticks, "ticks"))
      end
    end
    assert.are.equal("0001-01-01T00:00:00.0000000Z", la.iso8601(-62135596800))
    assert.are.equal("1970-01-01T00:00:00.0000000Z", la.iso8601(0))
    assert.are.equal("1969-12-31T23:59:58.5000000Z", la.iso8601(-1.5))
    assert.are.equal("2024-02-29T00:00:00.5000000Z", la.iso8601(1709164800500, "epoch_ms"))
    assert.are.equal("2000-01-02T03:04:05.0000000Z", la.iso8601(la.datetime("2000-01-02T03:04:05Z")))
    if has_integers then
      assert.are.equal("9999-12-31T23:59:59.9999999Z", la.iso8601(3155378975999999999, "ticks"))
      assert.are.equal("0001-01-01T00:00:00.0000000Z", la.iso8601(0, "ticks"))
    end
  end)

  it("la.datetime gives nil, why for text that is no datetime; la.iso8601 for times out of range", function()
    for _, s in ipairs { "2023-02-29T00:00:00Z", "2023-01-01T24:00:00Z", "2023-01-01T00:00:00",
                         "2023-01-01T00:00:00+00:00", "0000-01-01T00:00:00Z", "" } do
      local v, why = la.datetime(s)
      assert.is_nil(v)
      assert.matches("not a datetime", why)
    end
    for _, v in ipairs { 0 / 0, math.huge, -math.huge, -62135596801, 253402300800, 1e300 } do
      local text, why = la.iso8601(v)
      assert.is_nil(text, tostring(v))
      assert.matches("year 1 to 9999", why)
    end
    assert.is_nil((la.iso8601(-62135596800001, "epoch_ms")))
    if has_integers then
      assert.is_nil((la.iso8601(-1, "ticks")))
      assert.is_nil((la.iso8601(3155378976000000000, "ticks")))
      assert.is_nil((la.iso8601(math.maxinteger, "epoch")))
      assert.is_nil((la.iso8601(math.mininteger, "epoch_ms")))
    end
    -- misuse raises
    assert.has_error(function() la.datetime(20240101) end)
    assert.has_error(function() la.datetime(nil) end)
    assert.has_error(function() la.datetime("2024-01-01T00:00:00Z", "seconds") end)
    assert.has_error(function() la.iso8601("0") end)
    assert.has_error(function() la.iso8601(0, "ms") end)
  end)

  it("a datetime function: nil gives la.null, its error fails the query (client and decoder)", function()
    local tbl = assert(fixtures:query("datetimes", { datetime = function() return nil end })).tables[1]
    for _, row in ipairs(tbl.rows) do assert.are.equal(null, row.t) end
    local ok, err = pcall(fixtures.query, fixtures, "datetimes", {
      datetime = function(text) error("no thanks: " .. text, 0) end })
    assert.is_false(ok)
    assert.matches("no thanks: 2024%-02%-29T12:34:56%.1234567Z", tostring(err))
    -- the client is usable after it
    assert(fixtures:query("datetimes"))
    local dec = core.decoder { datetime = function() error("boom", 0) end }
    ok, err = pcall(dec.feed, dec, helper.read_file("spec/fixtures/datetimes.json"))
    assert.is_false(ok)
    assert.are.equal("boom", err)
    -- a callable table is a function too
    local calls = 0
    local callable = setmetatable({}, { __call = function(_, text) calls = calls + 1 return #text end })
    tbl = assert(fixtures:query("datetimes", { datetime = callable })).tables[1]
    assert.are.equal(28, tbl.rows[1].t)
    assert.is_true(calls > 10)
  end)

  it("core.decoder (the cosocket path) gives what the client gives, in pieces of any size", function()
    local option_sets = { { dynamic = "decode" }, { datetime = "epoch" }, { datetime = "epoch_ms", dynamic = "decode" } }
    if has_integers then option_sets[#option_sets + 1] = { datetime = "ticks" } end
    local checked = 0
    for _, name in ipairs { "datetimes", "all_types", "dynamic_values", "empty_rows" } do
      local body = helper.read_file("spec/fixtures/" .. name .. ".json")
      for _, opts in ipairs(option_sets) do
        local want = assert(fixtures:query(name, opts))
        for _, size in ipairs { 3, #body } do
          local dec = core.decoder(opts)
          for i = 1, #body, size do assert(dec:feed(body:sub(i, i + size - 1))) end
          local got = assert(dec:finish())
          for t, tbl in ipairs(want.tables) do
            for r, row in ipairs(tbl.rows) do
              for j = 1, #tbl.columns do
                assert(same(row[j], got.tables[t].rows[r][j]), ("%s row %d column %d"):format(name, r, j))
                checked = checked + 1
              end
            end
          end
        end
      end
    end
    assert.is_true(checked > 100)
  end)

  it("dynamic = \"decode\": nested values, exact longs, empty containers, text that is not JSON", function()
    local tbl = assert(fixtures:query("datetimes", { dynamic = "decode" })).tables[1]
    local d = tbl.rows[1].d
    assert.are.equal(1, d.a[1])
    assert.are.equal(null, d.a[3].b)
    assert.are.equal(1000, d.e)
    assert.are.equal("\195\169\240\159\152\128 \"q\"", d.s)
    if has_integers then
      assert.are.equal(math.maxinteger, d.big)
      assert.are.equal(math.mininteger, d.neg)
      assert.are.equal("float", math.type(d.huge))
    else
      assert.are.equal("9223372036854775807", d.big)
    end
    assert.are.same({}, tbl.rows[2].d)
    assert.are.same({}, tbl.rows[3].d)
    assert.are.equal("not json", tbl.rows[5].d)
    assert.are.equal("[1,", tbl.rows[6].d)
    assert.are.equal("str", tbl.rows[7].d)
    assert.are.equal(null, tbl.rows[18].d)  -- a JSON null cell: null in both modes
  end)

  it("dynamic = \"decode\": deep nesting decodes or stays the text, never fails", function()
    local depth = os.getenv("LA_REPEAT_RUN") and 2000 or 20000
    local text = ("["):rep(depth) .. ("]"):rep(depth)
    local body = '{"tables":[{"name":"t","columns":[{"name":"d","type":"dynamic"}],"rows":[['
      .. ('"%s"'):format(text) .. "]]}]}"
    local dec = core.decoder { dynamic = "decode" }
    assert(dec:feed(body))
    local v = assert(dec:finish()).tables[1].rows[1][1]
    if type(v) == "string" then
      assert.are.equal(text, v)
    else
      local n = 0
      while type(v) == "table" do n, v = n + 1, v[1] end
      assert.are.equal(depth, n)
    end
  end)

  it("a client's datetime and dynamic are its queries' defaults, which a query overrides", function()
    local client = helper.client { workspace = "FIXTURES", datetime = "epoch_ms", dynamic = "decode" }
    local row = assert(client:query("datetimes")).tables[1].rows[1]
    assert.are.equal(1709210096123, row.t)
    assert.is_table(row.d)
    row = assert(client:query("datetimes", { datetime = "string", dynamic = "text" })).tables[1].rows[1]
    assert.are.equal("2024-02-29T12:34:56.1234567Z", row.t)
    assert.is_string(row.d)
    row = assert(client:query("datetimes", { datetime = "epoch" })).tables[1].rows[1]
    assert.are.equal(1709210096 + 0.1234567, row.t)
    assert.is_table(row.d)
    -- and the rows streamed to on_row are made the same way
    local first
    assert(client:query("datetimes", { on_row = function(r) first = first or r.t end }))
    assert.are.equal(1709210096123, first)
  end)

  it("misuse raises with a message naming the option", function()
    assert.has_error(function() la.new { workspace = "W", api_key = "k", datetime = "seconds" } end,
      "loganalytics: option 'datetime' must be \"string\", \"epoch\", \"epoch_ms\", \"ticks\" or a function, got 'seconds'")
    assert.has_error(function() la.new { workspace = "W", api_key = "k", dynamic = true } end,
      "loganalytics: option 'dynamic' must be \"text\" or \"decode\", got boolean")
    assert.has_error(function() fixtures:query("datetimes", { datetime = 1 }) end,
      "loganalytics: option 'datetime' must be \"string\", \"epoch\", \"epoch_ms\", \"ticks\" or a function, got number")
    assert.has_error(function() fixtures:query("datetimes", { dynamic = "json" }) end,
      "loganalytics: option 'dynamic' must be \"text\" or \"decode\", got 'json'")
    local ok, err = pcall(core.decoder, { datetime = "local" })
    assert.is_false(ok)
    assert.matches("field 'datetime' must be", err)
    ok, err = pcall(core.decoder, { dynamic = "yes" })
    assert.is_false(ok)
    assert.matches("field 'dynamic' must be", err)
    if not has_integers then
      assert.has_error(function() la.new { workspace = "W", api_key = "k", datetime = "ticks" } end,
        "loganalytics: option 'datetime' = \"ticks\" needs Lua 5.3 or later (64-bit integers)")
      assert.has_error(function() fixtures:query("datetimes", { datetime = "ticks" }) end,
        "loganalytics: option 'datetime' = \"ticks\" needs Lua 5.3 or later (64-bit integers)")
      ok, err = pcall(core.decoder, { datetime = "ticks" })
      assert.is_false(ok)
      assert.matches("needs Lua 5.3 or later", err)
    end
  end)
end)
