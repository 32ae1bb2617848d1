--- How the `loganalytics` command spells cell values: numbers exactly,
-- nulls, booleans, and JSON text (lua-cjson would round longs through a
-- double, so the few lines of JSON writing needed are here).
-- @module loganalytics.cli.values

local core = require "loganalytics.core"
local numbers = require "loganalytics.numbers"

local type, tostring, tonumber, floor, huge = type, tostring, tonumber, math.floor, math.huge
local format, find, sub, byte, gsub = string.format, string.find, string.sub, string.byte, string.gsub
local math_type = math.type

local null = core.null

local M = {}

M.null = null

-- Doubles hold every integer up to 2^53 exactly; "%.0f" prints those as
-- plain digits, where the shortest "%g" form would use an exponent.
local EXACT_INTEGER_LIMIT = 2 ^ 53

--- A number as text: integers exactly; floats in the shortest form that
-- reads back as the same double; NaN and infinities as the service spells
-- them ("NaN", "Infinity", "-Infinity").
function M.number(x)
  if x ~= x then return "NaN" end
  if x == huge then return "Infinity" end
  if x == -huge then return "-Infinity" end
  if math_type and math_type(x) == "integer" then return format("%d", x) end
  if x == floor(x) and x > -EXACT_INTEGER_LIMIT and x < EXACT_INTEGER_LIMIT then
    return format("%.0f", x)
  end
  -- "." whatever the process's locale: csv and JSON readers expect it
  for digits = 1, 17 do
    local text = numbers.format("%." .. digits .. "g", x)
    if numbers.tonumber(text) == x then return text end
  end
  return numbers.format("%.17g", x)
end

--- A cell as plain text (csv, tsv, table): null is the empty string,
-- booleans "true"/"false", numbers as M.number, strings (also dynamic
-- JSON text and longs beyond 2^53 on Lua 5.1/5.2/LuaJIT) unchanged.
function M.text(v)
  local kind = type(v)
  if kind == "string" then return v end
  if kind == "number" then return M.number(v) end
  if kind == "boolean" then return v and "true" or "false" end
  if v == null then return "" end
  return tostring(v)
end

------------------------------------------------------------------ JSON

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
local function escape_char(c)
  return ESCAPES[c] or format("\\u%04x", byte(c))
end

--- A JSON string; UTF-8 passes through unchanged, only quotes, backslashes
-- and control characters are escaped.
function M.json_string(s)
  return '"' .. gsub(s, '[%z\1-\31"\\]', escape_char) .. '"'
end

-- A number as JSON: JSON has no NaN or infinities, so those become the
-- strings the service itself sends for them.
local function json_number(x)
  local text = M.number(x)
  if x ~= x or x == huge or x == -huge then return '"' .. text .. '"' end
  return text
end

------------------------------------------------------------------ validation

-- Is text[i..] a JSON value? Returns the position after it, or nil. Used
-- to embed dynamic cells as JSON only when they are JSON (cJSON would
-- accept "true story" as true, so it cannot tell).
local MAX_DEPTH = 1000
local value_end

local function skip_space(text, i)
  local _, last = find(text, "^[ \t\r\n]*", i)
  return last + 1
end

local function string_end(text, i)
  i = i + 1  -- past the opening quote
  while true do
    local _, last = find(text, '^[^"\\%z\1-\31]*', i)
    i = last + 1
    local c = sub(text, i, i)
    if c == '"' then return i + 1 end
    if c ~= "\\" then return nil end
    if find(text, '^["\\/bfnrt]', i + 1) then
      i = i + 2
    elseif find(text, "^u%x%x%x%x", i + 1) then
      i = i + 6
    else
      return nil
    end
  end
end

local function number_end(text, i)
  local _, last = find(text, "^%-?0", i)
  if not last then _, last = find(text, "^%-?[1-9]%d*", i) end
  if not last then return nil end
  local _, fraction = find(text, "^%.%d+", last + 1)
  last = fraction or last
  local _, exponent = find(text, "^[eE][%+%-]?%d+", last + 1)
  return (exponent or last) + 1
end

local function members_end(text, i, close, depth, keyed)
  i = skip_space(text, i + 1)
  if sub(text, i, i) == close then return i + 1 end
  while true do
    if keyed then
      if sub(text, i, i) ~= '"' then return nil end
      i = string_end(text, i)
      if not i then return nil end
      i = skip_space(text, i)
      if sub(text, i, i) ~= ":" then return nil end
      i = skip_space(text, i + 1)
    end
    i = value_end(text, i, depth + 1)
    if not i then return nil end
    i = skip_space(text, i)
    local c = sub(text, i, i)
    if c == close then return i + 1 end
    if c ~= "," then return nil end
    i = skip_space(text, i + 1)
  end
end

function value_end(text, i, depth)
  if depth > MAX_DEPTH then return nil end
  local c = sub(text, i, i)
  if c == "{" then return members_end(text, i, "}", depth, true) end
  if c == "[" then return members_end(text, i, "]", depth, false) end
  if c == '"' then return string_end(text, i) end
  for _, word in ipairs { "true", "false", "null" } do
    if sub(text, i, i + #word - 1) == word then return i + #word end
  end
  return number_end(text, i)
end

--- Is `text` exactly one JSON value (surrounding blanks allowed)?
function M.is_json(text)
  local i = value_end(text, skip_space(text, 1), 0)
  return i ~= nil and skip_space(text, i) == #text + 1
end

------------------------------------------------------------------ cells

local INTEGER_TYPES = { int = true, long = true }

--- The JSON for a cell of a column of type `column_type`: numbers and
-- booleans as such, null as null, a long kept as decimal text (Lua 5.1,
-- 5.2, LuaJIT beyond 2^53) as a number, a dynamic cell as the JSON it holds
-- (on one line) or as a string when it is not JSON, anything else a string.
function M.json_cell(v, column_type)
  local kind = type(v)
  if kind == "string" then
    if column_type == "dynamic" and M.is_json(v) then
      -- line breaks in valid JSON are blanks between tokens: one line
      return (gsub(v, "[\r\n]", " "))
    end
    if INTEGER_TYPES[column_type] and find(v, "^%-?%d+$") then return v end
    return M.json_string(v)
  end
  if kind == "number" then return json_number(v) end
  if kind == "boolean" then return v and "true" or "false" end
  if v == null then return "null" end
  return M.json_string(tostring(v))
end

-- An array is a table whose keys are exactly 1..n (n > 0).
local function is_array(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

--- Any decoded JSON value (statistics, render, error details) as compact
-- JSON; object keys sorted, so the output is stable; an empty table is {}.
function M.json(v, depth)
  depth = depth or 0
  local kind = type(v)
  if kind == "table" and depth < MAX_DEPTH then
    local parts = {}
    if is_array(v) then
      for i = 1, #v do parts[i] = M.json(v[i], depth + 1) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for i, k in ipairs(keys) do
      local value = v[k]
      if value == nil then value = v[tonumber(k)] end
      parts[i] = M.json_string(k) .. ":" .. M.json(value, depth + 1)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  if kind == "string" then return M.json_string(v) end
  if kind == "number" then return json_number(v) end
  if kind == "boolean" then return v and "true" or "false" end
  return "null"
end

return M
