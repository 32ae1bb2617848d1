-- The classic script: a service principal from the environment, the last
-- 24 hours of a table, its top 100 rows, "Total records" and the rows.
--
--   AZURE_TENANT_ID=... AZURE_CLIENT_ID=... AZURE_CLIENT_SECRET=... \
--   LA_WORKSPACE_ID=<workspace id> lua5.4 examples/last_24h.lua [Table]
--
-- LA_ENDPOINT and AZURE_AUTHORITY_HOST point it elsewhere than Azure (the
-- test suite runs it against the local server that way).
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

local credential = la.credentials.client_secret {
  tenant = need("AZURE_TENANT_ID"),
  client_id = need("AZURE_CLIENT_ID"),
  client_secret = need("AZURE_CLIENT_SECRET"),
}
local client = la.new {
  workspace = need("LA_WORKSPACE_ID"),
  endpoint = os.getenv("LA_ENDPOINT"),   -- nil: the public cloud's API
  credential = credential,
}

local result, err = client:query(table_name .. " | top 100 by TimeGenerated desc", { timespan = "P1D" })
if not result then
  io.stderr:write("last_24h: ", tostring(err), "\n")
  os.exit(1)
end

local rows = result.tables[1].rows
local columns = result.tables[1].columns
print("Total records: " .. #rows)
local names = {}
for j, col in ipairs(columns) do names[j] = col.name end
print(table.concat(names, "\t"))
for _, row in ipairs(rows) do
  local cells = {}
  for j = 1, #columns do
    local v = row[j]
    cells[j] = v == la.null and "" or tostring(v)
  end
  print(table.concat(cells, "\t"))
end
if result.status == "partial" then
  io.stderr:write("last_24h: partial result: ", tostring(result.error), "\n")
end
