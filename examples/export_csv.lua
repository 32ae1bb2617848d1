-- Streaming export to CSV: each row is written as it is parsed, while the
-- response is still arriving (the on_row option), so no row is held and
-- memory stays flat whatever the size of the result.
--
--   LOGANALYTICS_ENDPOINT=<query API> [LOGANALYTICS_WORKSPACE=...] \
--   [LOGANALYTICS_API_KEY=...] lua5.4 examples/export_csv.lua KQL [FILE]
-- (no FILE: standard output; the workspace and key default to the local
-- server's demo ones).
--
-- The CSV is RFC 4180: a header line of column names, CRLF line ends, a
-- field in double quotes (a quote doubled) when it holds a comma, a quote,
-- CR or LF. A null cell is an empty field and an empty string a quoted
-- empty field (""), so the two stay apart. Booleans are true/false,
-- integers exact (64-bit), reals the shortest text that reads back as the
-- same double (NaN, Infinity, -Infinity as the service writes them),
-- datetimes, GUIDs, timespans, decimals and dynamic values (JSON text) as
-- the service sent them. Only the first table of the result is exported.
-- Exit status: 0 written, 4 partial result (rows written, reason on stderr),
-- 1 failed, 2 usage.
local la = require "loganalytics"

local endpoint, kql, path = os.getenv("LOGANALYTICS_ENDPOINT"), arg[1], arg[2]
if not endpoint or endpoint == "" or not kql then
  io.stderr:write("usage: LOGANALYTICS_ENDPOINT=URL lua5.4 examples/export_csv.lua KQL [FILE]\n"
    .. "(URL: the local server's address, or https://api.loganalytics.azure.com)\n")
  os.exit(2)
end

local client = la.new {
  endpoint = endpoint,
  workspace = os.getenv("LOGANALYTICS_WORKSPACE") or "DEMO_WORKSPACE",
  api_key = os.getenv("LOGANALYTICS_API_KEY") or "DEMO_KEY",
}

local out = io.stdout
if path then
  out = assert(io.open(path, "wb"))
end

local format, huge = string.format, math.huge

local function text(v)
  if v == la.null then return nil end
  local kind = type(v)
  if kind == "boolean" then return v and "true" or "false" end
  if kind == "number" then
    if v ~= v then return "NaN" end
    if v == huge then return "Infinity" end
    if v == -huge then return "-Infinity" end
    if math.type and math.type(v) == "integer" then return format("%d", v) end
    for digits = 15, 17 do
      local s = format("%." .. digits .. "g", v)
      if tonumber(s) == v then return s end
    end
  end
  return tostring(v)
end

local function field(v)
  local s = text(v)
  if s == nil then return "" end
  if s == "" or s:find('[,"\r\n]') then
    return '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

local function line(values, n)
  local fields = {}
  for j = 1, n do fields[j] = field(values[j]) end
  out:write(table.concat(fields, ","), "\r\n")
end

local first, rows, skipped = nil, 0, 0
local function header(tbl)
  local names = {}
  for j, col in ipairs(tbl.columns) do names[j] = col.name end
  line(names, #names)
end

local result, err = client:query(kql, {
  on_row = function(row, tbl)
    if first == nil then
      first = tbl
      header(tbl)
    elseif tbl ~= first then
      skipped = skipped + 1
      return
    end
    line(row, #tbl.columns)
    rows = rows + 1
  end,
})

if not result then
  if path then out:close() end
  io.stderr:write("export_csv: ", tostring(err), "\n")
  os.exit(1)
end
if first == nil and result.tables[1] then header(result.tables[1]) end  -- no rows: the header alone
if path then assert(out:close()) else out:flush() end

io.stderr:write(("export_csv: %d rows written to %s\n"):format(rows, path or "standard output"))
if skipped > 0 then
  io.stderr:write(("export_csv: %d rows of later tables left out\n"):format(skipped))
end
if result.status == "partial" then
  io.stderr:write("export_csv: PARTIAL result, the rows above are not all: ", tostring(result.error), "\n")
  os.exit(4)
end
