-- No secret, assertion or token in any error, message or tostring. Every
-- failure path with a secret in play is driven here and what it says is
-- collected; and everything the whole suite made (helper.lua records every
-- error object, every log line given to a client's logger, and the tostring
-- of every client and credential; this file runs last, by name) is searched
-- too.
local helper = require "helper"
local la = require "loganalytics"

local said = {}

-- Collects every string reachable from v (error fields, nested tables).
local function collect(v, depth)
  depth = depth or 0
  if type(v) == "string" then
    said[#said + 1] = v
  elseif type(v) == "table" and depth < 10 then
    said[#said + 1] = tostring(v)
    for k, x in pairs(v) do
      collect(k, depth + 1)
      collect(x, depth + 1)
    end
  elseif v ~= nil then
    said[#said + 1] = tostring(v)
  end
end

local function run(command)
  local pipe = io.popen(command .. " 2>&1")
  local out = pipe:read("*a")
  pipe:close()
  said[#said + 1] = out
end

describe("secrets", function()
  local secrets = {
    "TEST_SECRET", "WRONG_SECRET_9731", "DEMO_KEY", "WRONG_KEY_5521", "TEST_CERT_PASSWORD",
    "WRONG_PASSWORD_3310", "TEST_REFRESH_TOKEN", "TEST_FEDERATED_TOKEN", "TEST_IDENTITY_HEADER",
    "STATIC_TOKEN_7781", "-----BEGIN",
    -- every secret of echoed_secrets_spec.lua (servers quoting requests back) is marked so
    "LEAKY_",
  }

  setup(function()
    local endpoint = helper.endpoint()
    helper.configure_identity('{"reset": true}')

    -- a good credential: its token and assertion must not leak later either
    local good = la.credentials.client_secret { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = "TEST_SECRET", authority_host = endpoint }
    local token = assert(good:get_token())
    secrets[#secrets + 1] = token
    collect(tostring(good))
    local cert = la.credentials.client_certificate { tenant = "TEST_TENANT", client_id = "TEST_CERT_CLIENT",
      certificate = helper.certificate_path(), authority_host = endpoint }
    assert(cert:get_token())
    secrets[#secrets + 1] = helper.identity().requests[#helper.identity().requests].form.client_assertion
    collect(tostring(cert))

    -- the API refusing that token (401) after a revocation, with no renewal possible
    helper.revoke_tokens()
    local fixed = la.new { endpoint = endpoint, workspace = "DEMO_WORKSPACE", token = token }
    collect(tostring(fixed))
    collect(select(2, fixed:query("Heartbeat | take 1")))

    -- wrong secret, wrong key (every way of sending it), wrong static token
    collect(select(2, la.credentials.client_secret { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = "WRONG_SECRET_9731", authority_host = endpoint }:get_token()))
    for _, how in ipairs { "header", "query", "basic" } do
      local c = la.new { endpoint = endpoint, workspace = "DEMO_WORKSPACE", api_key = "WRONG_KEY_5521", api_key_in = how }
      collect(tostring(c))
      collect(select(2, c:query("Heartbeat | take 1")))
      local good_key = la.new { endpoint = endpoint, workspace = "DEMO_WORKSPACE", api_key = "DEMO_KEY", api_key_in = how }
      collect(select(2, good_key:query("completely invalid syntax")))
    end
    collect(select(2, la.new { endpoint = endpoint, workspace = "DEMO_WORKSPACE",
      token = "STATIC_TOKEN_7781" }:query("Heartbeat | take 1")))
    -- a refused connection, retried (the retry log lines are collected too)
    collect(select(2, la.new { endpoint = "http://127.0.0.1:" .. helper.closed_port(), workspace = "W",
      api_key = "DEMO_KEY", api_key_in = "query", retry_delay = 0.01,
      log = function(level, message) collect(level .. " " .. message) end }:query("Heartbeat")))

    -- certificate with a wrong password, refresh token reused, workload and MI failures
    collect(select(2, la.credentials.client_certificate { tenant = "TEST_TENANT", client_id = "TEST_CERT_CLIENT",
      certificate = helper.certificate_path("both-enc.pem"), password = "WRONG_PASSWORD_3310",
      authority_host = endpoint }:get_token()))
    local refresh = la.credentials.refresh_token { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = "WRONG_SECRET_9731", refresh_token = "TEST_REFRESH_TOKEN", authority_host = endpoint }
    collect(select(2, refresh:get_token()))
    collect(tostring(refresh))
    collect(select(2, la.credentials.managed_identity { identity_endpoint = endpoint .. "/msi/token",
      identity_header = "TEST_IDENTITY_HEADER", client_id = "NOBODY" }:get_token()))

    -- a token function that fails, with its secret in hand
    collect(select(2, la.new { endpoint = endpoint, workspace = "DEMO_WORKSPACE",
      token = function() return nil, "provider down" end }:query("Heartbeat")))

    -- misuse messages
    for _, bad in ipairs {
      { api_key = "DEMO_KEY", token = "STATIC_TOKEN_7781" },
      { api_key = "DEMO_KEY", api_key_in = "cookie" },
      { token = "STATIC_TOKEN_7781", endpoint = "http://example.com" },
    } do
      collect(select(2, pcall(la.new, bad)))
    end

    -- the example, failing with a wrong secret
    run(("env LUA_PATH='lua/?.lua;;' LUA_CPATH='%s/?.so;;' AZURE_TENANT_ID=TEST_TENANT AZURE_CLIENT_ID=TEST_CLIENT "
      .. "AZURE_CLIENT_SECRET=WRONG_SECRET_9731 AZURE_AUTHORITY_HOST=%s LOGANALYTICS_WORKSPACE=DEMO_WORKSPACE "
      .. "LOGANALYTICS_ENDPOINT=%s lua5.4 examples/last_24h.lua"):format(helper.build_dir, endpoint, endpoint))
  end)

  teardown(function()
    -- the last file of the run: nothing after it needs this run's state
    helper.remove_state()
  end)

  it("collected the messages of every failure", function()
    assert.is_true(#said > 40)
    local text = table.concat(said, "\n")
    assert.matches("invalid_client", text)
    assert.matches("AADSTS7000215", text)
    assert.matches("password", text)
  end)

  it("appear in no error, log line or tostring the whole suite made", function()
    local text = helper.read_file(helper.messages_file)
    local count = select(2, text:gsub("%z\n", ""))
    assert.is_true(count > 200, "only " .. count .. " messages were recorded")
    for _, secret in ipairs(secrets) do
      local at = text:find(secret, 1, true)
      assert(not at, ("a secret (%s...) appears in: %s"):format(secret:sub(1, 6),
        at and text:sub(math.max(1, at - 100), at + 40) or ""))
    end
  end)

  it("appear in none of them", function()
    for _, secret in ipairs(secrets) do
      for _, message in ipairs(said) do
        assert(not message:find(secret, 1, true),
          ("a secret (%s...) appears in: %s"):format(secret:sub(1, 6), message))
      end
    end
  end)
end)
