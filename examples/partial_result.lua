-- A partial result handled. The service can answer a query with rows *and*
-- an error (HTTP 200): it stopped early, typically because the result went
-- over a limit (64 MB, 500,000 rows) or part of the data was unavailable.
-- client:query then returns the result with status "partial" and the reason
-- in result.error; `if not result` alone would take those rows as complete.
--
--   LOGANALYTICS_ENDPOINT=<query API> [LOGANALYTICS_WORKSPACE=...] \
--   [LOGANALYTICS_API_KEY=...] lua5.4 examples/partial_result.lua [KQL]
--
-- Against the local server, the FIXTURES workspace answers the query
-- "partial" with a recorded-shape partial result (spec/fixtures/partial.json):
--   LOGANALYTICS_WORKSPACE=FIXTURES sh examples/run_demo.sh examples/partial_result.lua partial
-- Exit status: 0 complete, 4 partial (rows printed, reason on stderr),
-- 1 failed, 2 usage.
local la = require "loganalytics"

-- The query API: the local server's address (sh examples/run_demo.sh sets
-- it), or https://api.loganalytics.azure.com for Azure. Never guessed.
local endpoint = os.getenv("LOGANALYTICS_ENDPOINT")
if not endpoint or endpoint == "" then
  io.stderr:write("set LOGANALYTICS_ENDPOINT: the local server's address (sh examples/run_demo.sh\n"
    .. "sets it) or https://api.loganalytics.azure.com\n")
  os.exit(2)
end

local client = la.new {
  endpoint = endpoint,
  workspace = os.getenv("LOGANALYTICS_WORKSPACE") or "DEMO_WORKSPACE",
  api_key = os.getenv("LOGANALYTICS_API_KEY") or "DEMO_KEY",
}

local kql = arg[1] or "AzureActivity | summarize count() by Category"
local result, err = client:query(kql, { timespan = "P1D" })
if not result then
  -- nothing came back: a failure, not a partial result
  io.stderr:write("partial_result: ", tostring(err), "\n")
  os.exit(1)
end

for _, tbl in ipairs(result.tables) do
  local names = {}
  for j, col in ipairs(tbl.columns) do names[j] = col.name end
  print(table.concat(names, "\t"))
  for _, row in ipairs(tbl.rows) do
    local cells = {}
    for j = 1, #tbl.columns do
      local v = row[j]
      cells[j] = v == la.null and "" or tostring(v)
    end
    print(table.concat(cells, "\t"))
  end
end

if result.status ~= "partial" then
  io.stderr:write(("partial_result: complete, %d rows\n"):format(#result.tables[1].rows))
  os.exit(0)
end

-- The innermost message of an error entry says what went wrong.
local function innermost(entry)
  local message = entry.message
  local inner = entry.innererror
  while type(inner) == "table" do
    message = inner.message or message
    inner = inner.innererror
  end
  return message
end

local e = result.error   -- an error object: kind "service", code "PartialError"
io.stderr:write(("partial_result: PARTIAL result, %d rows kept: %s\n"):format(
  #result.tables[1].rows, tostring(e)))
local too_large = false
for _, detail in ipairs(type(e.details) == "table" and e.details or {}) do
  local why = innermost(detail)
  io.stderr:write(("  %s: %s\n"):format(tostring(detail.code), tostring(why)))
  if tostring(why):find("E_QUERY_RESULT_SET_TOO_LARGE", 1, true) then too_large = true end
end
if too_large then
  io.stderr:write("  the result was cut at the service's size limit: narrow the query (a shorter\n"
    .. "  timespan, fewer columns, a summarize) or page it, rather than use these rows as all\n")
end
if e.correlation_id then
  io.stderr:write("  correlation id for a support request: ", e.correlation_id, "\n")
end
os.exit(4)
