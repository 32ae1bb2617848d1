-- A service principal: an Azure AD application's client id and secret (the
-- client credentials flow) give the tokens, and one token serves every
-- query until shortly before it expires.
--
--   LOGANALYTICS_ENDPOINT=<query API> AZURE_AUTHORITY_HOST=<identity platform> \
--   AZURE_TENANT_ID=... AZURE_CLIENT_ID=... AZURE_CLIENT_SECRET=... \
--   [LOGANALYTICS_WORKSPACE=<workspace id>] lua5.4 examples/service_principal.lua [KQL]
--
-- Both hosts are given, never assumed: against Azure they are
-- https://api.loganalytics.azure.com and https://login.microsoftonline.com;
-- against the local server (which also plays the identity provider) both
-- are its address, and TEST_TENANT / TEST_CLIENT / TEST_SECRET its test
-- identity (README, "Examples"). Exit status: 0 rows printed, 1 the query
-- failed, 2 usage, 3 no token.
local la = require "loganalytics"

local function need(name)
  local value = os.getenv(name)
  if not value or value == "" then
    io.stderr:write("service_principal: set ", name, "\n")
    os.exit(2)
  end
  return value
end

local endpoint = need("LOGANALYTICS_ENDPOINT")
local credential = la.credentials.client_secret {
  authority_host = need("AZURE_AUTHORITY_HOST"),
  tenant = need("AZURE_TENANT_ID"),
  client_id = need("AZURE_CLIENT_ID"),
  client_secret = need("AZURE_CLIENT_SECRET"),
}

-- Asking for a token first is not needed (the client asks when it queries),
-- but it tells a wrong secret apart from a failing query.
local token, expires_on = credential:get_token()
if not token then
  -- e.g. "auth error (HTTP 401 invalid_client): AADSTS7000215: Invalid client secret provided..."
  io.stderr:write("service_principal: no token: ", tostring(expires_on), "\n")
  os.exit(3)
end
print(("token for %s, valid until %s"):format(credential.scope, os.date("!%Y-%m-%dT%H:%M:%SZ", expires_on)))

local client = la.new {
  endpoint = endpoint,
  workspace = os.getenv("LOGANALYTICS_WORKSPACE") or "DEMO_WORKSPACE",
  credential = credential,   -- the client asks it for each query; it answers from its cache
}

local function run(kql)
  local result, err = client:query(kql, { timespan = "P1D" })
  if not result then
    io.stderr:write("service_principal: ", tostring(err), "\n")
    os.exit(err.kind == "auth" and 3 or 1)
  end
  local tbl = result.tables[1]
  local names = {}
  for j, col in ipairs(tbl.columns) do names[j] = col.name end
  print("\n> " .. kql)
  print(table.concat(names, "\t"))
  for _, row in ipairs(tbl.rows) do
    local cells = {}
    for j = 1, #tbl.columns do
      local v = row[j]
      cells[j] = v == la.null and "" or tostring(v)
    end
    print(table.concat(cells, "\t"))
  end
  print(("(%d rows)"):format(#tbl.rows))
end

run(arg[1] or "Heartbeat | summarize count() by Computer | top 5 by count_")
run("Usage | where IsBillable == true | summarize count() by DataType | top 3 by count_")
