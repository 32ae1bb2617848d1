--- The Azure clouds: each preset names the query API's host, its token
-- audience, the Azure AD authority and Azure Resource Manager.
-- The public cloud's audience stays https://api.loganalytics.io even though
-- the API host is the .azure.com one: that pairing is what the service takes.
--
-- `la.new{ cloud = name }` and every credential constructor's `cloud`
-- option pick one by name; each value stays overridable by its own option
-- (`endpoint`, `arm_endpoint`, `audience`, `authority_host`). Read-only.
-- Each preset has the fields of @{public}.
-- @module loganalytics.clouds

return {
  --- Azure's public cloud (the default).
  -- @table public
  -- @field endpoint the query API: `https://api.loganalytics.azure.com`
  -- @field audience the query API's token audience: `https://api.loganalytics.io`
  -- @field authority_host Azure AD: `https://login.microsoftonline.com`
  -- @field arm_endpoint Azure Resource Manager: `https://management.azure.com`
  -- @field arm_audience Resource Manager's token audience
  public = {
    endpoint = "https://api.loganalytics.azure.com",
    audience = "https://api.loganalytics.io",
    authority_host = "https://login.microsoftonline.com",
    arm_endpoint = "https://management.azure.com",
    arm_audience = "https://management.azure.com",
  },
  --- Azure Government: `api.loganalytics.us`, `login.microsoftonline.us`,
  -- `management.usgovcloudapi.net`.
  -- @table usgov
  usgov = {
    endpoint = "https://api.loganalytics.us",
    audience = "https://api.loganalytics.us",
    authority_host = "https://login.microsoftonline.us",
    arm_endpoint = "https://management.usgovcloudapi.net",
    arm_audience = "https://management.usgovcloudapi.net",
  },
  --- Azure China (21Vianet): `api.loganalytics.azure.cn`,
  -- `login.chinacloudapi.cn`, `management.chinacloudapi.cn`.
  -- @table china
  china = {
    endpoint = "https://api.loganalytics.azure.cn",
    audience = "https://api.loganalytics.azure.cn",
    authority_host = "https://login.chinacloudapi.cn",
    arm_endpoint = "https://management.chinacloudapi.cn",
    arm_audience = "https://management.chinacloudapi.cn",
  },
}
