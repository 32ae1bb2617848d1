-- Contender 3: what a Lua user does today: download with the curl CLI (gzip),
-- cjson.decode (Debian's lua-cjson), then a Lua pass converting cells by column
-- type into the same shape as the module's result: rows as arrays (converted in
-- place) sharing one metatable that maps column names to positions.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "common"
local endpoint, n = bench.args()
local cjson = require "cjson"

local null = cjson.null
local tointeger, tonumber, type, lower = math.tointeger, tonumber, type, string.lower
local huge = math.huge

local function to_integer(x)
  local v = tonumber(x)              -- cjson gives every number as a float
  if v == nil then return x end
  return tointeger(v) or v
end
local SPECIAL = { NaN = 0 / 0, Infinity = huge, ["-Infinity"] = -huge }
local function to_real(x)
  if type(x) == "number" then return x + 0.0 end
  local s = SPECIAL[x]
  if s then return s end
  local v = tonumber(x)
  return v and v + 0.0 or x
end
local BOOLS = { ["true"] = true, ["false"] = false, ["1"] = true, ["0"] = false }
local function to_bool(x)
  local t = type(x)
  if t == "boolean" then return x end
  if t == "number" then return x ~= 0 end
  local b = BOOLS[lower(x)]
  if b == nil then return x end
  return b
end
local function to_string(x)
  local t = type(x)
  if t == "string" then return x end
  if t == "table" then return cjson.encode(x) end   -- dynamic sent unquoted
  return tostring(x)
end
local BY_TYPE = { int = to_integer, long = to_integer, real = to_real, bool = to_bool }

local url = endpoint .. "/v1/workspaces/bench-" .. n .. "/query"
local cmd = "curl -sS --fail --compressed -X POST -H 'Content-Type: application/json'"
  .. " -H 'X-Api-Key: x' --data-raw '{\"query\":\"" .. bench.KQL .. "\"}' '" .. url .. "'"

local t0 = bench.now()
local pipe = assert(io.popen(cmd, "r"))
local body = pipe:read("a")
local closed, how, code = pipe:close()
if not closed then bench.fail(("curl failed: %s %s"):format(how, code)) end
local doc = cjson.decode(body)
local bytes = #body
body = nil
local tbl = doc.tables[1]
local columns = tbl.columns
local ncols = #columns
local convert, index = {}, {}
for j = 1, ncols do
  convert[j] = BY_TYPE[columns[j].type] or to_string
  index[columns[j].name] = j
end
local mt = { __index = function(row, name)
  local j = index[name]
  if j then return rawget(row, j) end
end }
local rows = tbl.rows
for i = 1, #rows do
  local row = rows[i]
  for j = 1, ncols do
    local v = row[j]
    if v ~= null then row[j] = convert[j](v) end
  end
  setmetatable(row, mt)
end
local t1 = bench.now()

if #rows[n] ~= 15 or math.type(rows[1].DurationMs) ~= "integer" then bench.fail("unexpected shape") end
bench.report(t1 - t0, #rows, n, bytes)
