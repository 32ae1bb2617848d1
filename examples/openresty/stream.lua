-- GET /stream?kql=...[&format=ndjson|csv][&workspace=...][&timespan=...]:
-- the query's rows streamed to the client as they arrive from the service,
-- one JSON object (or CSV line) per row, in flat memory however many rows:
-- every few hundred rows are flushed and the handler waits until the client
-- took them (ngx.flush(true)), so a slow client slows the query down rather
-- than filling memory. When the client goes away (lua_check_client_abort),
-- the query stops and its connection to the service is closed.
local la_clients = require "la_clients"
local cjson = require "cjson.safe"
local la = require "loganalytics"

local args = ngx.req.get_uri_args()
local kql, format = args.kql, args.format or "ndjson"
if type(kql) ~= "string" or kql == "" or (format ~= "ndjson" and format ~= "csv") then
  ngx.status = ngx.HTTP_BAD_REQUEST
  ngx.say("give the query as ?kql= and the format as ?format=ndjson or csv")
  return
end
local client, why = la_clients.get()
if not client then
  ngx.status = ngx.HTTP_INTERNAL_SERVER_ERROR
  ngx.say(why)
  return
end

-- the client went away: end the request now (nginx closes its sockets,
-- the one to the service included)
local ok = ngx.on_abort(function() ngx.exit(499) end)
if not ok then ngx.log(ngx.WARN, "lua_check_client_abort is off: a query outlives its client") end

local FLUSH_EVERY = 500
local buffer, buffered = {}, 0

-- one cell as JSON (nulls, NaN and infinities spelled as the service does)
local function json_cell(v)
  if v == la.null then return "null" end
  if type(v) == "number" then
    if v ~= v then return '"NaN"' end
    if v == math.huge then return '"Infinity"' end
    if v == -math.huge then return '"-Infinity"' end
  end
  return cjson.encode(v)
end

local function csv_cell(v)
  if v == la.null then return "" end
  local text = tostring(v)
  if text:find('[",\r\n]') then text = '"' .. text:gsub('"', '""') .. '"' end
  return text
end

local names = {}  -- per table: the JSON-encoded column names
local function emit(line)
  buffered = buffered + 1
  buffer[buffered] = line
  if buffered < FLUSH_EVERY then return true end
  local sent = ngx.print(buffer)
  buffer, buffered = {}, 0
  -- waits (yielding) until the client has taken it: flat memory
  return sent and ngx.flush(true)
end

ngx.header["Content-Type"] = format == "csv" and "text/csv" or "application/x-ndjson"
local header_done = {}
local result, err = client:query(kql, {
  workspace = args.workspace, timespan = args.timespan,
  on_row = function(row, tbl)
    local parts = {}
    if format == "csv" then
      if not header_done[tbl] then
        header_done[tbl] = true
        for j, col in ipairs(tbl.columns) do parts[j] = csv_cell(col.name) end
        if not emit(table.concat(parts, ",") .. "\n") then return false end
        parts = {}
      end
      for j = 1, #tbl.columns do parts[j] = csv_cell(row[j]) end
      return emit(table.concat(parts, ",") .. "\n") and true or false
    end
    local keys = names[tbl]
    if not keys then
      keys = {}
      for j, col in ipairs(tbl.columns) do keys[j] = cjson.encode(col.name) .. ":" end
      names[tbl] = keys
    end
    for j = 1, #keys do parts[j] = keys[j] .. json_cell(row[j]) end
    return emit("{" .. table.concat(parts, ",") .. "}\n") and true or false
  end,
})
if buffered > 0 then ngx.print(buffer) end
if not result then
  -- the rows so far are sent: the error goes last, as one more line
  ngx.log(ngx.ERR, tostring(err))
  ngx.print(format == "csv" and ("# error: " .. tostring(err) .. "\n")
            or (cjson.encode { error = tostring(err), kind = err.kind } .. "\n"))
elseif result.status == "partial" then
  ngx.print(format == "csv" and ("# partial: " .. tostring(result.error) .. "\n")
            or (cjson.encode { partial = tostring(result.error) } .. "\n"))
end
