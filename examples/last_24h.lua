-- The classic script: a service principal from the environment, the last
-- 24 hours of a table: how many records it holds ("Total records", counted
-- by the service) and the newest 100 of them.
--
--   LOGANALYTICS_ENDPOINT=https://api.loganalytics.azure.com \
--   LOGANALYTICS_WORKSPACE=<workspace id> \
--   AZURE_AUTHORITY_HOST=https://login.microsoftonline.com \
--   AZURE_TENANT_ID=... AZURE_CLIENT_ID=... AZURE_CLIENT_SECRET=... \
--   lua5.4 examples/last_24h.lua [Table]
--
-- Every host is given, none assumed: against the local server both are its
-- address (sh examples/run_demo.sh sets them; its test identity is
-- TEST_TENANT / TEST_CLIENT / TEST_SECRET, its workspace DEMO_WORKSPACE).
-- Exit status: 0 printed, 1 a query failed, 2 usage.
local la = require "loganalytics"

local function need(name)
  local value = os.getenv(name)
  if not value or value == "" then
    io.stderr:write("last_24h: set ", name, "\n")
    os.exit(2)
  end
  return value
end

local table_name = arg[1] or "Heartbeat"
if not table_name:match("^[%a_][%w_]*$") then
  io.stderr:write("last_24h: not a table name: ", table_name, "\n")
  os.exit(2)
end

local endpoint, workspace = need("LOGANALYTICS_ENDPOINT"), need("LOGANALYTICS_WORKSPACE")
local credential = la.credentials.client_secret {
  authority_host = need("AZURE_AUTHORITY_HOST"),
  tenant = need("AZURE_TENANT_ID"),
  client_id = need("AZURE_CLIENT_ID"),
  client_secret = need("AZURE_CLIENT_SECRET"),
}
local client = la.new { endpoint = endpoint, workspace = workspace, credential = credential }

-- The service applies the timespan to every table the query reads.
local function query(kql)
  local result, err = client:query(kql, { timespan = "P1D" })
  if not result then
    io.stderr:write("last_24h: ", tostring(err), "\n")
    os.exit(1)
  end
  if result.status == "partial" then
    io.stderr:write("last_24h: partial result: ", tostring(result.error), "\n")
  end
  return result.tables[1]
end

local total = query(table_name .. " | count").rows[1].Count
local newest = query(table_name .. " | top 100 by TimeGenerated desc")

print(("Total records: %s"):format(tostring(total)))
print(("Newest %d:"):format(#newest.rows))
local names = {}
for j, col in ipairs(newest.columns) do names[j] = col.name end
print(table.concat(names, "\t"))
for _, row in ipairs(newest.rows) do
  local cells = {}
  for j = 1, #newest.columns do
    local v = row[j]
    cells[j] = v == la.null and "" or tostring(v)
  end
  print(table.concat(cells, "\t"))
end
