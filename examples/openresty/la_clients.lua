-- One loganalytics.resty client per worker and per settings, made at the
-- first request that needs it and kept (a module's table lives as long as
-- the worker's Lua VM): its connections and tokens serve every request.
local resty = require "loganalytics.resty"

local M = {}
local clients = {}

-- The environment (nginx.conf's env lines) first, then nginx.conf's $la_*
-- variables.
function M.setting(name)
  local value = os.getenv("LOGANALYTICS_" .. name:upper())
  if value and value ~= "" then return value end
  value = ngx.var["la_" .. name]
  if value and value ~= "" then return value end
  return nil
end

-- The client for this request's settings, or nil and why.
function M.get()
  local endpoint = M.setting("endpoint")
  if not endpoint then
    return nil, "no query API: set LOGANALYTICS_ENDPOINT (nginx.conf's env) or $la_endpoint"
  end
  local workspace, api_key = M.setting("workspace"), M.setting("api_key")
  local key = endpoint .. "\n" .. tostring(workspace) .. "\n" .. tostring(api_key)
  local client = clients[key]
  if not client then
    client = resty.new { endpoint = endpoint, workspace = workspace, api_key = api_key }
    clients[key] = client
  end
  return client
end

return M
