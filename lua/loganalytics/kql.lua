--- Safe KQL: literals that no input can escape, and `format` with typed
-- placeholders, for queries built from values a user or a request gave.
--
-- Each function returns KQL text standing for exactly the value given, or
-- raises (a message starting `"loganalytics: kql."`) for a value that has
-- no exact KQL literal: invalid UTF-8, a NUL byte, NaN in a `dynamic`, a
-- datetime outside years 1-9999, ... Nothing is ever silently altered.
--
-- Strings are double-quoted with backslash escapes. Kusto.Language's lexer
-- (microsoft/Kusto-Query-Language, `TokenParser.ScanStringLiteralContent`)
-- ends such a literal only at an unescaped `"` or a line break, so escaping
-- `"`, `\`, CR and LF is what keeps a value inside its literal; `\t` is
-- escaped too, as the KQL reference ("The string data type") documents, and
-- the other control characters (U+0001-U+001F, U+007F) as `\uXXXX`
-- (Kusto.Language `KustoFacts.GetStringLiteralValue`), so that a query
-- never carries a raw control character into a log or a terminal, and the
-- same text is a JSON string inside `dynamic(...)`. Everything else,
-- quotes `'` and backticks, `h"`, `@"`, `|`, `;`, `//`, `{1}`, right-to-left
-- marks and every other character of valid UTF-8, is written as it is:
-- inside a double-quoted literal none of them means anything.
-- @module loganalytics.kql
-- @usage
-- local la = require "loganalytics"
-- local kql = la.kql.format(
--   "Heartbeat | where Computer == {1} and TimeGenerated > {2:datetime} | take {3}",
--   computer_from_request, os.time() - 3600, 10)
-- --> Heartbeat | where Computer == "web\"01" and TimeGenerated > datetime(...) | take 10
-- kql = la.kql.format("T | where Id in ({1}) | project {2:ident}", { "a", "b" }, "my column")
-- --> T | where Id in ("a", "b") | project ['my column']

local core = require "loganalytics.core"
local check = require "loganalytics.check"
local numbers = require "loganalytics.numbers"
local timespan = require "loganalytics.timespan"

local type, pairs, ipairs, tostring, tonumber, select, floor, huge =
  type, pairs, ipairs, tostring, tonumber, select, math.floor, math.huge
local format, concat, sort = string.format, table.concat, table.sort
local misuse, is_utf8 = check.misuse, check.is_utf8
local null = core.null
local math_type = math.type  -- Lua 5.3+: integers and floats told apart

local M = {}

-- strings --------------------------------------------------------------

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
-- The bytes written as escapes: the quote, the backslash and control characters.
-- (An explicit class: %c follows the C locale, where 0x80-0x9F may count.)
local NEEDS_ESCAPE = '[\1-\31"\\\127]'

local function escape_char(c)
  return ESCAPES[c] or format("\\u%04x", c:byte())
end

-- `s` as text a KQL string literal can hold exactly, or a misuse naming `what`.
local function check_text(what, s)
  if type(s) ~= "string" then misuse(format("%s must be a string, got %s", what, type(s))) end
  if s:find("%z") then
    misuse(what .. " contains a NUL byte, which a query cannot carry")
  end
  if not is_utf8(s) then
    misuse(what .. " is not valid UTF-8 (a query is UTF-8 text: convert or refuse such input)")
  end
end

local function quoted(s)
  return '"' .. s:gsub(NEEDS_ESCAPE, escape_char) .. '"'
end

local function string_literal(what, s)
  check_text(what, s)
  return quoted(s)
end

local function ident_literal(what, name)
  check_text(what, name)
  if name == "" then misuse(what .. " is empty") end
  if name:find("[\1-\31\127]") then misuse(what .. " contains a control character") end
  return "['" .. name:gsub("['\\]", "\\%0") .. "']"
end

--- A KQL string literal holding exactly `s`, whatever it contains.
-- syntax: `text = la.kql.string(s)`
--
-- A double-quoted literal: `"`, `\`, CR, LF and tab are written `\"`, `\\`,
-- `\r`, `\n`, `\t`, other control characters `\uXXXX`, everything else as
-- it is.
-- @tparam string s valid UTF-8 without NUL bytes (anything else raises: a
-- query cannot carry it)
-- @treturn string e.g. `"say \"hi\"\n"`
function M.string(s)
  return string_literal("kql.string: the value", s)
end

--- A bracketed KQL name, `['name']`, for a column or table name of any
-- spelling (spaces, dashes, keywords such as `where`, quotes, brackets).
-- syntax: `text = la.kql.ident(name)`
--
-- Inside the brackets is a single-quoted literal: `'` and `\` are escaped.
-- @tparam string name valid UTF-8, not empty; control characters (NUL,
-- line breaks, tab, ...) raise: no Kusto name holds them
-- @treturn string e.g. `['my column']`, `['it\'s']`
function M.ident(name)
  return ident_literal("kql.ident: the name", name)
end

-- numbers --------------------------------------------------------------

local TWO_53 = 2 ^ 53
local TWO_63 = 2 ^ 63

local function is_integer(v)
  if math_type then return math_type(v) == "integer" end
  -- Lua 5.1 and LuaJIT have only floats: whole numbers that are exact
  return v == floor(v) and v > -TWO_53 and v < TWO_53
end

-- The shortest of %.15g/%.16g/%.17g that reads back as `v` ("." whatever the locale).
local function real_digits(v)
  local text
  for precision = 15, 17 do
    text = numbers.format("%." .. precision .. "g", v)
    if numbers.tonumber(text) == v then break end
  end
  return text
end

local function integer_digits(v)
  if math_type and math_type(v) == "integer" then return format("%d", v) end
  return numbers.format("%.0f", v)
end

-- A long literal: its digits (KQL reads 123 as a long), but the least long
-- as long(...): -9223372036854775808 is `-` before a literal out of range.
local function long_text(v)
  local digits = integer_digits(v)
  if digits == "-9223372036854775808" then return "long(" .. digits .. ")" end
  return digits
end

local function long_literal(what, v)
  if type(v) ~= "number" then misuse(format("%s must be a number, got %s", what, type(v))) end
  if not is_integer(v) and not (v == floor(v) and v >= -TWO_63 and v < TWO_63) then
    misuse(what .. " is not a whole number a long can hold")
  end
  return long_text(v)
end

local function real_literal(what, v)
  if type(v) ~= "number" then misuse(format("%s must be a number, got %s", what, type(v))) end
  if v ~= v then return "real(nan)" end
  if v == huge then return "real(+inf)" end
  if v == -huge then return "real(-inf)" end
  return "real(" .. real_digits(v) .. ")"
end

-- datetimes --------------------------------------------------------------

local TICKS = 10000000  -- 100 ns ticks in a second: KQL's resolution

-- Whole seconds and ticks (0 to TICKS - 1) of a number of seconds >= 0,
-- rounded to the nearest tick (a fraction that rounds up carries).
local function ticks_of(seconds)
  local whole = floor(seconds)
  local ticks = floor((seconds - whole) * TICKS + 0.5)
  if ticks >= TICKS then whole, ticks = whole + 1, 0 end
  return whole, ticks
end

-- ".5", ".1234567": the ticks as a fraction of a second, no trailing zeros.
local function fraction_text(ticks)
  if ticks == 0 then return "" end
  return "." .. (format("%07d", ticks):gsub("0+$", ""))
end

-- Epoch seconds as the C core writes them (la.iso8601: rounded to the
-- nearest 100 ns, years 1 to 9999), the fraction without trailing zeros.
local function epoch_datetime(what, t)
  local text = core.iso8601(t)
  if not text then misuse(what .. " is outside KQL's datetimes (years 1 to 9999)") end
  return (text:gsub("%.?0*Z$", "Z"))
end

-- "2024-01-02" or "2024-01-02T03:04:05[.1234567]Z", a day and time that
-- exist, rebuilt from its digits (the text given is never pasted).
local function iso_datetime(what, s)
  local date, h, mi, sec, fraction = s:match("^(%d%d%d%d%-%d%d%-%d%d)T(%d%d):(%d%d):(%d%d)%.(%d+)Z$")
  if not date then
    date, h, mi, sec = s:match("^(%d%d%d%d%-%d%d%-%d%d)T(%d%d):(%d%d):(%d%d)Z$")
  end
  if not date then date = s:match("^(%d%d%d%d%-%d%d%-%d%d)$") end
  local valid = date ~= nil and #(fraction or "") <= 7 and date:sub(1, 4) ~= "0000"
    and tonumber(h or 0) < 24 and timespan.is_datetime(s)
  if not valid then
    misuse(what .. " must be epoch seconds or an ISO 8601 UTC date-time such as "
      .. "2024-01-02T03:04:05.1234567Z (at most 7 fractional digits), got " .. quoted(s))
  end
  return format("%sT%s:%s:%s", date, h or "00", mi or "00", sec or "00")
    .. fraction_text(tonumber(((fraction or "") .. "0000000"):sub(1, 7))) .. "Z"
end

local function datetime_literal(what, v)
  if v == null then return "datetime(null)" end
  if type(v) == "number" then return "datetime(" .. epoch_datetime(what, v) .. ")" end
  if type(v) == "string" then
    check_text(what, v)
    return "datetime(" .. iso_datetime(what, v) .. ")"
  end
  misuse(format("%s must be epoch seconds or an ISO 8601 string, got %s", what, type(v)))
end

--- A KQL datetime literal, exact to KQL's 100 ns.
-- syntax: `text = la.kql.datetime(v)`
--
-- Always `datetime(YYYY-MM-DDThh:mm:ss[.fffffff]Z)`, the fraction without
-- trailing zeros.
-- @tparam number|string v epoch seconds (a fraction rounds to the nearest
-- 100 ns), or an ISO 8601 UTC string: `"2024-01-02"` or
-- `"2024-01-02T03:04:05Z"` with up to 7 fractional digits, a day and time
-- that exist; anything else raises (offsets, `24:00`, junk). Years 1 to 9999.
-- @treturn string e.g. `datetime(2024-01-02T03:04:05.5Z)`
function M.datetime(v)
  if v == null then misuse("kql.datetime: the value is la.null (write datetime(null))") end
  return datetime_literal("kql.datetime: the value", v)
end

-- timespans --------------------------------------------------------------

-- .NET's TimeSpan.MaxValue is 922337203685.4775807 s: whole seconds below it
local TIMESPAN_LIMIT = 922337203685

local function timespan_literal(what, v)
  if v == null then return "time(null)" end
  if type(v) ~= "number" then misuse(format("%s must be a number of seconds, got %s", what, type(v))) end
  if not (v > -TIMESPAN_LIMIT and v < TIMESPAN_LIMIT) then
    misuse(what .. " is not a number of seconds a KQL timespan can hold")
  end
  local whole, ticks = ticks_of(v < 0 and -v or v)
  local days = floor(whole / 86400)
  local rest = whole - days * 86400
  local sign = (v < 0 and (whole > 0 or ticks > 0)) and "-" or ""
  return format("time(%s%s%02d:%02d:%02d%s)", sign, days > 0 and integer_digits(days) .. "." or "",
                floor(rest / 3600), floor(rest % 3600 / 60), rest % 60,
                ticks > 0 and format(".%07d", ticks) or "")
end

--- A KQL timespan literal, exact to KQL's 100 ns.
-- syntax: `text = la.kql.timespan(seconds)`
--
-- Always `time([-][d.]hh:mm:ss[.fffffff])`, .NET's constant ("c") format,
-- as the .NET SDK's `LogsQueryClient.CreateQuery` writes it.
-- @tparam number seconds negative allowed; a fraction rounds to the
-- nearest 100 ns; beyond .NET's TimeSpan range (about 29,227 years) raises
-- @treturn string e.g. `time(00:00:01.5000000)`, `time(-1.02:03:04)`
function M.timespan(seconds)
  if seconds == null then misuse("kql.timespan: the value is la.null (write time(null))") end
  return timespan_literal("kql.timespan: the value", seconds)
end

-- dynamic --------------------------------------------------------------

-- Appends the JSON of `v` to `out`; `path` holds the keys down to it (for
-- messages), `open` the tables being written (a cycle raises).
local function write_json(v, out, path, open, what)
  local function fail(problem)
    local where = { what }
    for i = 1, #path do
      local k = path[i]
      where[#where + 1] = type(k) == "number" and format("[%d]", k) or "." .. k
    end
    misuse(concat(where) .. " " .. problem)
  end
  local kind = type(v)
  if v == null then
    out[#out + 1] = "null"
  elseif kind == "boolean" then
    out[#out + 1] = tostring(v)
  elseif kind == "number" then
    if v ~= v or v == huge or v == -huge then fail("is NaN or infinite, which JSON cannot hold") end
    if is_integer(v) then
      out[#out + 1] = long_text(v)
    else
      local text = real_digits(v)
      -- "5" would read back as a long: a float stays a real
      if not text:find("[.e]") then text = text .. ".0" end
      out[#out + 1] = text
    end
  elseif kind == "string" then
    if v:find("%z") then fail("contains a NUL byte, which a query cannot carry") end
    if not is_utf8(v) then fail("is not valid UTF-8") end
    out[#out + 1] = quoted(v)
  elseif kind == "table" then
    if open[v] then fail("is a table that contains itself (a cycle)") end
    open[v] = true
    local count, strings = 0, {}
    for k in pairs(v) do
      count = count + 1
      if type(k) == "string" then
        strings[#strings + 1] = k
      elseif type(k) ~= "number" or k ~= floor(k) or k < 1 then
        fail("has a key that is neither a string nor an array index: " .. tostring(k))
      end
    end
    local depth = #path + 1
    if #strings == 0 then
      -- an array: keys 1..n without holes (an empty table is an empty array)
      for i = 1, count do
        if v[i] == nil then fail("is an array with holes (use la.null for JSON null)") end
      end
      out[#out + 1] = "["
      for i = 1, count do
        if i > 1 then out[#out + 1] = "," end
        path[depth] = i
        write_json(v[i], out, path, open, what)
      end
      out[#out + 1] = "]"
    elseif #strings == count then
      sort(strings)  -- the same value, the same text
      out[#out + 1] = "{"
      for i, k in ipairs(strings) do
        if i > 1 then out[#out + 1] = "," end
        path[depth] = k
        if k:find("%z") or not is_utf8(k) then fail("is a key that is not valid UTF-8 or has a NUL byte") end
        out[#out + 1] = quoted(k)
        out[#out + 1] = ":"
        write_json(v[k], out, path, open, what)
      end
      out[#out + 1] = "}"
    else
      fail("mixes string keys and array indexes")
    end
    path[depth] = nil
    open[v] = nil
  else
    fail("is a " .. kind .. ", which has no JSON form")
  end
end

local function dynamic_literal(what, v)
  if v == nil then misuse(what .. " is nil (la.null stands for JSON null)") end
  local out = { "dynamic(" }
  write_json(v, out, {}, {}, what)
  out[#out + 1] = ")"
  return concat(out)
end

--- A KQL `dynamic(...)` literal holding a Lua value as JSON.
-- syntax: `text = la.kql.dynamic(value)`
--
-- Tables with keys `1..n` (no holes) are arrays, tables with string keys
-- objects (keys sorted), an empty table `[]`; `la.null` is `null`. Strings
-- are escaped as by @{string} (each is a JSON string and a KQL string
-- literal at once: KQL reads `dynamic()`'s contents as KQL literals).
-- Integers are exact (Lua 5.3+: the integer subtype; Lua 5.1 and LuaJIT:
-- whole numbers below 2^53), floats read back as the same float and stay
-- reals (`5.0` is written `5.0`). Raises on NaN and infinities, cycles,
-- tables mixing string keys and indexes or with other keys, functions and
-- other values JSON has no form for.
-- @param value a table, string, number, boolean or `la.null`
-- @treturn string e.g. `dynamic({"a":[1,2.5,"x"],"b":null})`
function M.dynamic(value)
  return dynamic_literal("kql.dynamic: the value", value)
end

-- format --------------------------------------------------------------

local TYPED = {
  string = string_literal, ident = ident_literal,
  datetime = datetime_literal, timespan = timespan_literal, dynamic = dynamic_literal,
  long = function(what, v) return v == null and "long(null)" or long_literal(what, v) end,
  real = function(what, v) return v == null and "real(null)" or real_literal(what, v) end,
}

-- One value, its type told by the placeholder or else by its Lua type.
local function scalar(what, v, kind)
  if v == null and (kind == "string" or kind == "ident") then
    misuse(what .. " is la.null: a KQL string is never null (\"\" stands for none)")
  end
  if kind then return TYPED[kind](what, v) end
  local t = type(v)
  if t == "string" then return string_literal(what, v) end
  if t == "number" then
    return is_integer(v) and long_text(v) or real_literal(what, v)
  end
  if t == "boolean" then return tostring(v) end
  if v == null then
    misuse(what .. " is la.null: give the placeholder a type ({n:long}, {n:datetime}, ...) "
      .. "for a typed null, or write one (long(null), ...) in the template")
  end
  misuse(format("%s is a %s, which has no KQL literal", what, t))
end

-- A value for a placeholder: a list table becomes its elements' literals,
-- comma-separated (for `in (...)`), except for {n:dynamic}.
local function placeholder(index, v, kind)
  local what = format("kql.format: argument %d", index)
  if v == nil then misuse(what .. " is nil") end
  if type(v) ~= "table" or kind == "dynamic" then return scalar(what, v, kind) end
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  if n == 0 or count ~= n then
    misuse(what .. " is a table that is not a list of values (1..n, not empty: "
      .. "KQL's in () needs at least one)")
  end
  local parts = {}
  for i = 1, n do
    local item = format("%s[%d]", what, i)
    if type(v[i]) == "table" then misuse(item .. " is a table (a list holds values)") end
    parts[i] = scalar(item, v[i], kind)
  end
  return concat(parts, ", ")
end

--- KQL text from a template with numbered placeholders, each replaced by
-- a literal for its argument.
-- syntax: `text = la.kql.format(template, ...)`
--
-- `{1}`, `{2}`, ... take their type from the Lua value: a string is a
-- string literal (@{string}), an integer its digits (a long in KQL), a float `real(x)`
-- (reading back as the same float; `real(nan)`, `real(+inf)`, `real(-inf)`),
-- a boolean `true`/`false`, and a list table its elements' literals,
-- comma-separated, for `in ({2})`. `la.null` raises there: a null has a type in
-- KQL. `{1:string}`, `{1:ident}` (@{ident}), `{1:datetime}` (@{datetime}),
-- `{1:timespan}` (@{timespan}), `{1:dynamic}` (@{dynamic}), `{1:long}` and
-- `{1:real}` force the type: `la.null` then gives the typed null
-- (`datetime(null)`, ...; not for string and ident), and a list table gives
-- each element with that type (but a whole table is one `dynamic`).
-- `{{` and `}}` are literal braces. Placeholders may repeat and come in any
-- order. The template is code and is copied as it is; values are never
-- read as templates.
--
-- Raises on a placeholder out of range, an argument no placeholder uses,
-- an unknown type, a stray `{` or `}`, and every value the literal
-- functions refuse.
-- @tparam string template KQL with placeholders
-- @param ... the values
-- @treturn string the query
-- @usage
-- la.kql.format("Heartbeat | where Computer in ({1}) | where TimeGenerated > ago({2:timespan})",
--   { "web01", "db01" }, 3600)
-- --> Heartbeat | where Computer in ("web01", "db01") | where TimeGenerated > ago(time(01:00:00))
function M.format(template, ...)
  if type(template) ~= "string" then
    misuse("kql.format: the template must be a string, got " .. type(template))
  end
  local n = select("#", ...)
  local args, used, out, pos = { ... }, {}, {}, 1
  while true do
    local at = template:find("[{}]", pos)
    if not at then break end
    out[#out + 1] = template:sub(pos, at - 1)
    local brace = template:sub(at, at)
    if template:sub(at + 1, at + 1) == brace then
      out[#out + 1] = brace
      pos = at + 2
    else
      local digits, kind, after = template:match("^{(%d+)(:?[%w_]*)}()", at)
      if brace == "}" or not digits then
        misuse(format("kql.format: a stray '%s' at byte %d of the template (placeholders are "
          .. "{1}, {2:string}, ...; write '%s%s' for a brace)", brace, at, brace, brace))
      end
      local index = tonumber(digits)
      if index < 1 or index > n then
        misuse(format("kql.format: {%s} is out of range: %d argument%s given", digits, n,
          n == 1 and "" or "s"))
      end
      if kind == ":" or (kind ~= "" and not TYPED[kind:sub(2)]) then
        misuse(format("kql.format: unknown type '%s' in {%s%s} (string, ident, datetime, "
          .. "timespan, dynamic, long, real)", kind:sub(2), digits, kind))
      end
      out[#out + 1] = placeholder(index, args[index], kind ~= "" and kind:sub(2) or nil)
      used[index] = true
      pos = after
    end
  end
  out[#out + 1] = template:sub(pos)
  for i = 1, n do
    if not used[i] then misuse(format("kql.format: argument %d is not used by the template", i)) end
  end
  return concat(out)
end

return M
