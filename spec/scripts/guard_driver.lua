-- Drives the plain-http guard with hostile URLs (spec/url_guard_spec.lua).
-- Run by netns_guard.sh inside its network namespace, where 192.0.2.2:18080
-- is the capture server and 127.0.0.1:PORT the project's local server:
--   lua5.4 spec/scripts/guard_driver.lua GROUP PORT
-- Prints one line per case: group, case, expectation, outcome (raised,
-- error or ok), the error's kind and its message, tab-separated. Every
-- secret is SECRET_<something>: none may ever reach the capture server.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local la = require "loganalytics"

local group, port = arg[1], arg[2]
local LOCAL = "http://127.0.0.1:" .. port
local CAPTURE = "192.0.2.2:18080"
local LIMITS = { connect_timeout = 2, timeout = 4, max_retries = 0 }

local function one_line(s)
  return (tostring(s):gsub("[\r\n\t]", " "))
end

local function report(name, expect, outcome, kind, message)
  io.write(table.concat({ group, name, expect, outcome, kind or "-", one_line(message or "") }, "\t"), "\n")
  io.flush()
end

-- A query through a client made from `options` (plus LIMITS).
local function query_case(name, expect, options)
  local o = {}
  for k, v in pairs(LIMITS) do o[k] = v end
  for k, v in pairs(options) do o[k] = v end
  o.workspace = o.workspace or "DEMO_WORKSPACE"
  local ok, client = pcall(la.new, o)
  if not ok then return report(name, expect, "raised", nil, client) end
  local result, err = client:query("Heartbeat | take 1")
  if result then return report(name, expect, "ok", nil, "rows: " .. #result.tables[1].rows) end
  report(name, expect, "error", err.kind, tostring(err))
end

-- A token request from a client_secret credential made from `options`.
local function token_case(name, expect, options)
  local o = { tenant = "TEST_TENANT", client_id = "TEST_CLIENT", client_secret = "SECRET_CLIENT_" .. name,
              connect_timeout = 2, timeout = 4 }
  for k, v in pairs(options) do o[k] = v end
  local ok, credential = pcall(la.credentials.client_secret, o)
  if not ok then return report(name, expect, "raised", nil, credential) end
  local token, err = credential:get_token()
  if token then return report(name, expect, "ok", nil, "a token") end
  report(name, expect, "error", err.kind, tostring(err))
end

-- A request made straight through the C core (loganalytics.core), which
-- must refuse by itself, whatever the Lua layer let through.
local function core_case(name, expect, request)
  local core = require "loganalytics.core"
  local http = core.new()
  request.body = request.body or "{}"
  request.connect_timeout, request.timeout = 2, 4
  local response = http:perform(request)
  http:close()
  local t = response.transport
  if t then return report(name, expect, "error", t.kind, t.message) end
  report(name, expect, "ok", nil, "HTTP " .. tostring(response.status))
end

-- Every way to say "the capture server" that a careless check could take
-- for loopback (or not see at all).
local HOSTILE = {
  userinfo_ipv4 = "http://127.0.0.1:80@" .. CAPTURE,
  userinfo_ipv6 = "http://[::1]:80@" .. CAPTURE,
  userinfo_ipv6_bare = "http://[::1]@" .. CAPTURE,
  userinfo_localhost = "http://localhost@" .. CAPTURE,
  userinfo_semicolon = "http://127.0.0.1;x@" .. CAPTURE,
  userinfo_encoded_slash = "http://127.0.0.1%2f@" .. CAPTURE,
  userinfo_trailing_dot = "http://127.0.0.1.@" .. CAPTURE,
  backslash = "http://127.0.0.1\\@" .. CAPTURE,
  space = "http://127.0.0.1 @" .. CAPTURE,
  tab = "http://127.0.0.1\t@" .. CAPTURE,
  uppercase_scheme = "HTTP://" .. CAPTURE,
  mixed_case_scheme = "hTTp://" .. CAPTURE .. "/",
  trailing_dot = "http://192.0.2.2.:18080",
  percent_encoded_host = "http://%31%39%32.0.2.2:18080",
  decimal_ipv4 = "http://3221225986:18080",
  octal_ipv4 = "http://0300.0.02.02:18080",
  hex_ipv4 = "http://0xc0.0x0.0x2.0x2:18080",
  hex_ipv4_whole = "http://0xc0000202:18080",
  short_ipv4 = "http://192.0.514:18080",
  ipv4_mapped_ipv6 = "http://[::ffff:192.0.2.2]:18080",
  one_slash = "http:/" .. CAPTURE,
  fragment_trick = "http://" .. CAPTURE .. "#@127.0.0.1",
  query_trick = "http://" .. CAPTURE .. "?@127.0.0.1",
}
local ORDER = {}
for name in pairs(HOSTILE) do ORDER[#ORDER + 1] = name end
table.sort(ORDER)

if group == "plain" then
  -- controls: the capture server is reachable and records (allow_http with a
  -- key that is not a SECRET_), and the local server answers
  query_case("control_capture", "control", { endpoint = "http://" .. CAPTURE, api_key = "CONTROL_KEY",
                                             allow_http = true })
  query_case("control_local", "allowed", { endpoint = LOCAL, api_key = "DEMO_KEY" })
  for _, name in ipairs(ORDER) do
    local url = HOSTILE[name]
    query_case("endpoint_key_" .. name, "refused", { endpoint = url, api_key = "SECRET_KEY_" .. name })
    query_case("endpoint_token_" .. name, "refused", { endpoint = url, token = "SECRET_TOKEN_" .. name })
    query_case("arm_endpoint_" .. name, "refused", {
      arm_endpoint = url, token = "SECRET_ARM_" .. name,
      workspace = { subscription = "s", resource_group = "g", name = "demo-workspace" } })
    token_case("authority_" .. name, "refused", { authority_host = url })
  end
  for _, key_in in ipairs { "query", "basic" } do
    query_case("endpoint_key_in_" .. key_in, "refused", { endpoint = HOSTILE.userinfo_ipv4,
      api_key = "SECRET_KEY_IN_" .. key_in, api_key_in = key_in })
  end
  -- proxies given as an option
  for name, proxy in pairs { proxy_http = "http://" .. CAPTURE, proxy_bare = CAPTURE,
                             proxy_upper = "HTTP://" .. CAPTURE, proxy_socks = "socks5://" .. CAPTURE,
                             proxy_userinfo = "http://127.0.0.1:80@" .. CAPTURE } do
    query_case(name .. "_key", "refused", { endpoint = LOCAL, api_key = "SECRET_KEY_" .. name, proxy = proxy })
    query_case(name .. "_token", "refused", { endpoint = LOCAL, token = "SECRET_TOKEN_" .. name, proxy = proxy })
  end
  -- the C core on its own: proxies, secrets in headers, user name or URL
  local path = "/v1/workspaces/DEMO_WORKSPACE/query"
  core_case("core_proxy_option_header", "refused", { url = LOCAL .. path, proxy = "http://" .. CAPTURE,
                                                     headers = { "X-Api-Key: SECRET_CORE_PROXY" } })
  core_case("core_proxy_bare_bearer", "refused", { url = LOCAL .. path, proxy = CAPTURE,
                                                   headers = { "authorization: Bearer SECRET_CORE_BEARER" } })
  core_case("core_proxy_socks_basic", "refused", { url = LOCAL .. path, proxy = "socks5h://" .. CAPTURE,
                                                   username = "SECRET_CORE_USER", password = "" })
  core_case("core_proxy_query_key", "refused", { url = LOCAL .. path .. "?api_key=SECRET_CORE_QUERY",
                                                 proxy = "http://" .. CAPTURE })
  for name, url in pairs(HOSTILE) do
    core_case("core_url_" .. name, "refused", { url = url, headers = { "X-Api-Key: SECRET_CORE_" .. name } })
  end
  core_case("core_userinfo_even_with_allow_http", "refused", { url = HOSTILE.userinfo_ipv4, allow_http = true,
                                                              headers = { "X-Api-Key: SECRET_CORE_ALLOW" } })
  -- IMDS and App Service endpoints are parsed the same way
  local ok, why = pcall(la.credentials.managed_identity, { imds_endpoint = HOSTILE.userinfo_ipv4 })
  report("imds_userinfo", "refused", ok and "ok" or "raised", nil, ok and "" or why)
  ok, why = pcall(la.credentials.managed_identity, { identity_endpoint = HOSTILE.userinfo_ipv4,
                                                     identity_header = "SECRET_IDENTITY_HEADER" })
  report("identity_endpoint_userinfo", "refused", ok and "ok" or "raised", nil, ok and "" or why)
elseif group == "env_HTTP_PROXY" or group == "env_no_proxy" or group == "env_no_proxy_cidr" then
  -- libcurl ignores HTTP_PROXY (upper case) for http, and no_proxy exempts
  -- 127.0.0.1 (NO_PROXY 127.0.0.0/8): the request goes straight to the local server
  query_case("direct_key", "allowed", { endpoint = LOCAL, api_key = "DEMO_KEY" })
  token_case("direct_token_request", "allowed", { authority_host = LOCAL, client_secret = "TEST_SECRET" })
elseif group == "env_HTTPS_PROXY" then
  -- not for http; for https, libcurl tunnels (CONNECT): the key stays inside TLS
  query_case("http_target_key", "allowed", { endpoint = LOCAL, api_key = "DEMO_KEY" })
  query_case("https_target_key", "tunnel", { endpoint = "https://127.0.0.1:9", api_key = "SECRET_KEY_TUNNEL" })
elseif group == "hosts_file" then
  -- "localhost." passes for loopback, but the resolver says 192.0.2.2: the
  -- address reached is checked before a byte of the request is sent
  query_case("control_hosts", "control", { endpoint = "http://localhost.:18080", api_key = "CONTROL_KEY_HOSTS",
                                           allow_http = true })
  query_case("resolved_key", "refused", { endpoint = "http://localhost.:18080", api_key = "SECRET_KEY_HOSTS" })
  query_case("resolved_token", "refused", { endpoint = "http://localhost.:18080", token = "SECRET_TOKEN_HOSTS" })
  token_case("resolved_token_request", "refused", { authority_host = "http://localhost.:18080" })
else
  -- http_proxy, all_proxy, ALL_PROXY: every plain-http request with a secret
  query_case("key", "refused", { endpoint = LOCAL, api_key = "SECRET_KEY_" .. group })
  query_case("key_in_query", "refused", { endpoint = LOCAL, api_key = "SECRET_QKEY_" .. group, api_key_in = "query" })
  query_case("token", "refused", { endpoint = LOCAL, token = "SECRET_TOKEN_" .. group })
  token_case("token_request", "refused", { authority_host = LOCAL })
end
