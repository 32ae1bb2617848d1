--- The Azure clouds: each preset names the query API's host, its token
-- audience, the Azure AD authority and Azure Resource Manager.
-- The public cloud's audience stays https://api.loganalytics.io even though
-- the API host is the .azure.com one: that pairing is what the service takes.
-- @module loganalytics.clouds

return {
  public = {
    endpoint = "https://api.loganalytics.azure.com",
    audience = "https://api.loganalytics.io",
    authority_host = "https://login.microsoftonline.com",
    arm_endpoint = "https://management.azure.com",
    arm_audience = "https://management.azure.com",
  },
  usgov = {
    endpoint = "https://api.loganalytics.us",
    audience = "https://api.loganalytics.us",
    authority_host = "https://login.microsoftonline.us",
    arm_endpoint = "https://management.usgovcloudapi.net",
    arm_audience = "https://management.usgovcloudapi.net",
  },
  china = {
    endpoint = "https://api.loganalytics.azure.cn",
    audience = "https://api.loganalytics.azure.cn",
    authority_host = "https://login.chinacloudapi.cn",
    arm_endpoint = "https://management.chinacloudapi.cn",
    arm_audience = "https://management.chinacloudapi.cn",
  },
}
