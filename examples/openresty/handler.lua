-- GET /query?kql=...[&workspace=...]: the query's rows as JSON, run in
-- nginx's thread pool so the worker's event loop stays free.
-- GET /query?computer=NAME: the computer's last heartbeats. The parameter
-- reaches the query only as a literal made by la.kql.format: whatever it
-- holds (quotes, `|`, newlines, `//`), it is compared as one string and
-- never read as KQL. (?kql= runs the caller's own query: for trusted callers.)
local lan = require "loganalytics.nginx"
local la = require "loganalytics"
local cjson = require "cjson"

local args = ngx.req.get_uri_args()
local kql = args.kql
if type(args.computer) == "string" and kql == nil then
  -- misuse (invalid UTF-8, a NUL byte) raises: answered 400 below
  local ok, text = pcall(la.kql.format,
    "Heartbeat | where Computer == {1} | top 10 by TimeGenerated desc", args.computer)
  if not ok then
    ngx.status = ngx.HTTP_BAD_REQUEST
    ngx.say(cjson.encode { error = text })
    return
  end
  kql = text
end
if type(kql) ~= "string" or kql == "" then
  ngx.status = ngx.HTTP_BAD_REQUEST
  ngx.say(cjson.encode { error = "give the query as ?kql= (or a computer name as ?computer=)" })
  return
end

-- the environment (nginx.conf's env lines) first, then nginx.conf's variables
local setting = require("la_clients").setting

if not setting("endpoint") then
  ngx.status = ngx.HTTP_INTERNAL_SERVER_ERROR
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode { error = "no query API: set LOGANALYTICS_ENDPOINT (nginx.conf's env) or $la_endpoint" })
  return
end

local result, err = lan.query({
  endpoint = setting("endpoint"),
  workspace = args.workspace or setting("workspace"),
  api_key = setting("api_key"),
}, kql, { timespan = args.timespan })

ngx.header["Content-Type"] = "application/json"
if not result then
  ngx.status = err.status == 400 and 400 or 502
  ngx.say(cjson.encode { error = tostring(err), kind = err.kind, code = err.code })
  return
end
-- JSON has no NaN or infinities: a real column's are written as the service
-- writes them, "NaN", "Infinity", "-Infinity" (cjson would refuse them)
local function spell_special_reals(tbl)
  for j, column in ipairs(tbl.columns) do
    if column.type == "real" then
      for _, row in ipairs(tbl.rows) do
        local v = row[j]
        if v ~= v then row[j] = "NaN"
        elseif v == math.huge then row[j] = "Infinity"
        elseif v == -math.huge then row[j] = "-Infinity" end
      end
    end
  end
end

local out = { status = result.status, tables = {} }
for i, tbl in ipairs(result.tables) do
  spell_special_reals(tbl)
  out.tables[i] = { name = tbl.name, columns = tbl.columns, rows = tbl.rows }
end
-- la.null is cjson.null: nulls come out as JSON null
ngx.say(cjson.encode(out))
