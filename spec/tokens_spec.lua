-- One token cache per credential, and one set of transport settings: a
-- client's queries and its credential's token requests share the proxy, the
-- CA, TLS verification and the time limits; managed identity never goes
-- through a proxy. Real HTTP against the local server and small loopback
-- listeners (spec/scripts/listener.py: a forward proxy, a listener that never
-- answers, one that stalls).
local helper = require "helper"
local la = require "loganalytics"

local function own_pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = tonumber(f:read("*a"):match("^(%d+)"))
  f:close()
  return pid
end

-- Starts spec/scripts/listener.py in MODE; returns its port and a function
-- giving the request lines it received so far.
local function listener(mode)
  local log = os.tmpname()
  local port = helper.background_port(("python3 spec/scripts/listener.py %s %s %d"):format(mode, log, own_pid()))
  assert(port, "the listener did not start")
  return port, function()
    local f = io.open(log, "r")
    local lines = {}
    if f then
      for line in f:lines() do lines[#lines + 1] = line end
      f:close()
    end
    return lines
  end
end

local function secret_credential(extra)
  local o = { tenant = "TEST_TENANT", client_id = "TEST_CLIENT", client_secret = "TEST_SECRET",
              authority_host = helper.endpoint() }
  for k, v in pairs(extra or {}) do o[k] = v end
  return la.credentials.client_secret(o)
end

local function credential_client(credential, extra)
  local o = { endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE", credential = credential,
              max_retries = 0 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return la.new(o)
end

local function authorization()
  return helper.last_request().headers.authorization
end

before_each(function()
  helper.configure_identity('{"reset": true}')
end)

describe("one token cache per credential", function()
  it("renews the token a client sends at the credential's refresh_in, not 5 minutes before expiry", function()
    helper.configure_identity('{"expires_in": 3600, "refresh_in": 2}')
    local client = credential_client(secret_credential())
    assert.is_table((client:query("Heartbeat | take 1")))
    local first = authorization()
    os.execute("sleep 3.2")
    local result, err = client:query("Heartbeat | take 1")
    assert.is_table(result, tostring(err))
    assert.are_not.equal(first, authorization())
    assert.equals(2, helper.identity().token_requests)
  end)

  it("asks the credential at every query: invalidating it renews the client's token", function()
    local credential = secret_credential()
    local client = credential_client(credential)
    assert.is_table((client:query("Heartbeat | take 1")))
    local first = authorization()
    credential:invalidate()
    assert.is_table((client:query("Heartbeat | take 1")))
    assert.are_not.equal(first, authorization())
    assert.equals("Bearer " .. credential:get_token(), authorization())
    assert.equals(2, helper.identity().token_requests)
  end)

  it("renews after a 401 through the credential's own cache", function()
    local credential = secret_credential()
    local client = credential_client(credential)
    assert.is_table((client:query("Heartbeat | take 1")))
    helper.revoke_tokens()
    local result, err = client:query("Heartbeat | take 1")
    assert.is_table(result, tostring(err))
    -- the credential answers with the token the client renewed: no third request
    assert.equals("Bearer " .. credential:get_token(), authorization())
    assert.equals(2, helper.identity().token_requests)
  end)

  it("wraps a token function into a credential with the same cache: refresh before expiry, forget on 401", function()
    local calls = 0
    local client = credential_client(nil, { token = function()
      calls = calls + 1
      -- a 6 s lifetime: renewed after half of it, as the C credentials do
      return "DEMO_TOKEN", os.time() + 6
    end })
    assert.is_table((client:query("Heartbeat | take 1")))
    assert.is_table((client:query("Heartbeat | take 1")))
    assert.equals(1, calls)
    os.execute("sleep 4.2")
    assert.is_table((client:query("Heartbeat | take 1")))
    assert.equals(2, calls)
  end)
end)

describe("token requests use the client's transport settings", function()
  local tls
  setup(function() tls = helper.get("/_test/tls") end)

  it("verify the identity platform's certificate with the client's ca_file", function()
    local credential = secret_credential { authority_host = "https://127.0.0.1:" .. tls.good }
    local result, err = credential_client(credential, { ca_file = tls.ca_file }):query("Heartbeat | take 1")
    assert.is_table(result, tostring(err))
    assert.equals(1, helper.identity().token_requests)
  end)

  it("keep a credential's own TLS settings over the client's", function()
    local credential = secret_credential { authority_host = "https://127.0.0.1:" .. tls.good,
                                           ca_file = tls.ca_file }
    local result, err = credential_client(credential, { ca_file = "/nonexistent/ca.pem" })
      :query("Heartbeat | take 1", { workspace = "DEMO_WORKSPACE" })
    -- the token request took the credential's CA (the client's file does not exist:
    -- libcurl would have failed on it); the query itself is plain http here
    assert.is_table(result, tostring(err))
    assert.equals(1, helper.identity().token_requests)
  end)

  it("go through the client's proxy", function()
    local port, seen = listener("proxy")
    local client = credential_client(secret_credential(), { proxy = "http://127.0.0.1:" .. port })
    local result, err = client:query("Heartbeat | take 1")
    assert.is_table(result, tostring(err))
    local token_line, query_line
    for _, line in ipairs(seen()) do
      if line:find("/TEST_TENANT/oauth2/v2.0/token", 1, true) then token_line = line end
      if line:find("/v1/workspaces/DEMO_WORKSPACE/query", 1, true) then query_line = line end
    end
    assert.matches("^POST http://127%.0%.0%.1:%d+/TEST_TENANT/oauth2/v2%.0/token HTTP", token_line or "(none)")
    assert.is_string(query_line)
  end)
end)

describe("token requests have time limits", function()
  -- in a fresh lua5.4 under `timeout`, so a request with no limit fails the
  -- spec instead of hanging the suite
  local SCRIPT = [[
local la = require "loganalytics"
local credential = la.credentials.client_secret { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
  client_secret = "TEST_SECRET", authority_host = "http://127.0.0.1:%d" %s }
local client = la.new { endpoint = "%s", workspace = "DEMO_WORKSPACE", credential = credential,
  max_retries = 0 %s }
local started = os.time()
local result, err = client:query("Heartbeat | take 1")
print(result and "RESULT" or ("ERROR " .. err.kind .. " " .. tostring(err)))
]]

  local function token_run(port, credential_options, client_options)
    return helper.run_lua(SCRIPT:format(port, credential_options, helper.endpoint(), client_options),
                          nil, "timeout 15")
  end

  it("end a token request from a listener that never answers within the client's timeout", function()
    local port = listener("silent")
    local ok, out, seconds = token_run(port, "", ", timeout = 1")
    assert.is_true(ok, out)
    assert.matches("^ERROR timeout", out)
    assert.is_true(seconds < 5, seconds .. " s")
  end)

  it("end a token request whose answer stalls after the client's stall_timeout", function()
    local port = listener("stall")
    local ok, out, seconds = token_run(port, "", ", stall_timeout = 1")
    assert.is_true(ok, out)
    assert.matches("^ERROR timeout .*stalled", out)
    assert.is_true(seconds < 5, seconds .. " s")
  end)

  it("keep a credential's own timeout over the client's", function()
    local port = listener("silent")
    local ok, out, seconds = token_run(port, ", timeout = 1", ", timeout = 60")
    assert.is_true(ok, out)
    assert.matches("^ERROR timeout", out)
    assert.is_true(seconds < 5, seconds .. " s")
  end)
end)

describe("managed identity", function()
  it("never goes through a proxy from http_proxy / HTTP_PROXY (IMDS and App Service)", function()
    local port, seen = listener("proxy")
    local proxy = "http://127.0.0.1:" .. port
    local ok, out = helper.run_lua(([[
local la = require "loganalytics"
local imds = la.credentials.managed_identity { imds_endpoint = "%s" }
local app = la.credentials.managed_identity { identity_endpoint = "%s/msi/token",
                                              identity_header = "TEST_IDENTITY_HEADER" }
for _, c in ipairs { imds, app } do
  local token, err = c:get_token()
  print(token and "TOKEN" or ("ERROR " .. tostring(err)))
end
]]):format(helper.endpoint(), helper.endpoint()),
      { http_proxy = proxy, HTTP_PROXY = proxy, https_proxy = proxy, ALL_PROXY = proxy }, "timeout 15")
    assert.is_true(ok, out)
    assert.equals("TOKEN\nTOKEN\n", out)
    assert.same({}, seen())
    assert.equals(2, helper.identity().token_requests)
  end)

  it("never goes through the client's proxy, while the query does", function()
    local port, seen = listener("proxy")
    local credential = la.credentials.managed_identity { imds_endpoint = helper.endpoint() }
    local client = credential_client(credential, { proxy = "http://127.0.0.1:" .. port })
    local result, err = client:query("Heartbeat | take 1")
    assert.is_table(result, tostring(err))
    local lines = seen()
    assert.equals(1, #lines, table.concat(lines, "\n"))
    assert.matches("/v1/workspaces/DEMO_WORKSPACE/query", lines[1], 1, true)
    assert.equals(1, helper.identity().token_requests)
  end)
end)

