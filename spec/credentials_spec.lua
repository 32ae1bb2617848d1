-- Azure AD credentials against the local server playing the identity
-- provider (v2.0 and v1 token endpoints, IMDS, App Service), over real HTTP.
local helper = require "helper"
local la = require "loganalytics"

local SCOPE = "https://api.loganalytics.io/.default"

local function secret_credential(extra)
  local o = { tenant = "TEST_TENANT", client_id = "TEST_CLIENT", client_secret = "TEST_SECRET",
              authority_host = helper.endpoint() }
  for k, v in pairs(extra or {}) do o[k] = v end
  return la.credentials.client_secret(o)
end

local function credential_client(credential)
  return la.new { endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE", credential = credential }
end

local function last_token_request()
  local log = helper.identity().requests
  return log[#log]
end

local function token_requests()
  return helper.identity().token_requests
end

before_each(function()
  helper.configure_identity('{"reset": true}')
end)

describe("client_secret", function()
  it("gets a token from the v2.0 endpoint with the default scope", function()
    local token, expires_on = secret_credential():get_token()
    assert.is_string(token)
    assert.is_true(expires_on > os.time())
    local seen = last_token_request()
    assert.equals("/TEST_TENANT/oauth2/v2.0/token", seen.path)
    assert.equals("client_credentials", seen.form.grant_type)
    assert.equals("TEST_CLIENT", seen.form.client_id)
    assert.equals(SCOPE, seen.form.scope)
  end)

  it("uses the v1 endpoint with resource when asked", function()
    local token = secret_credential { resource = "https://api.loganalytics.io" }:get_token()
    assert.is_string(token)
    local seen = last_token_request()
    assert.equals("/TEST_TENANT/oauth2/token", seen.path)
    assert.equals("https://api.loganalytics.io", seen.form.resource)
    assert.is_nil(seen.form.scope)
  end)

  it("answers queries with its token, one token request for ten queries", function()
    local client = credential_client(secret_credential())
    for _ = 1, 10 do
      assert.is_table((client:query("Heartbeat | take 1")))
    end
    assert.equals(1, token_requests())
    assert.matches("^Bearer at%-", helper.last_request().headers.authorization)
  end)

  -- (token times are whole seconds: a lifetime of a few seconds leaves the
  -- first queries room even when a second boundary falls between them, and
  -- under valgrind)
  it("refreshes ahead of expiry", function()
    helper.configure_identity('{"expires_in": 6}')  -- renewed after half of it, 3 s
    local client = credential_client(secret_credential())
    assert.is_table((client:query("Heartbeat | take 1")))
    assert.is_table((client:query("Heartbeat | take 1")))
    assert.equals(1, token_requests())
    os.execute("sleep 4.2")
    assert.is_table((client:query("Heartbeat | take 1")))
    assert.equals(2, token_requests())
  end)

  it("honours refresh_in when the identity provider sends it", function()
    helper.configure_identity('{"expires_in": 3600, "refresh_in": 2}')
    local credential = secret_credential()
    local first = credential:get_token()
    assert.equals(first, (credential:get_token()))
    os.execute("sleep 3.2")
    local second = credential:get_token()
    assert.are_not.equal(first, second)
    assert.equals(2, token_requests())
  end)

  it("renews the token once and retries when the API answers 401", function()
    local client = credential_client(secret_credential())
    assert.is_table((client:query("Heartbeat | take 1")))
    helper.revoke_tokens()
    local before = #helper.get("/_test/requests")
    local result, err = client:query("Heartbeat | take 1")
    assert.is_table(result, tostring(err))
    assert.equals(2, token_requests())
    assert.equals(before + 2, #helper.get("/_test/requests"))
  end)

  it("gives an auth error with the AADSTS code and message for a wrong secret, without the secret", function()
    local credential = secret_credential { client_secret = "WRONG_SECRET_1234" }
    local token, err = credential:get_token()
    assert.is_nil(token)
    assert.equals("auth", err.kind)
    assert.equals(401, err.status)
    assert.equals("invalid_client", err.code)
    assert.matches("AADSTS7000215", err.message)
    assert.is_nil(tostring(err):find("WRONG_SECRET_1234", 1, true))

    local client = credential_client(credential)
    local result, qerr = client:query("Heartbeat | take 1")
    assert.is_nil(result)
    assert.equals("auth", qerr.kind)
    assert.equals("invalid_client", qerr.code)
  end)

  it("reads the recorded invalid_client answer as the identity platform sent it", function()
    local recording = helper.read_file(helper.recorded_dir()
      .. "/py-monitor-query_test_exceptions.pyTestQueryExceptionstest_logs_batch_query_fatal_exception.json")
    local entries = require("loganalytics.core").decode_json(recording).Entries
    local recorded = entries[#entries].ResponseBody
    local _, err = secret_credential { client_secret = "bad_secret" }:get_token()
    assert.equals(recorded.error, err.code)
    assert.equals(recorded.error_codes[1], err.error_code)
    assert.matches(recorded.error_description:sub(1, 40), err.message, 1, true)
  end)
end)

describe("authorization_code", function()
  local function code_credential()
    return la.credentials.authorization_code {
      tenant = "TEST_TENANT", client_id = "TEST_CLIENT", client_secret = "TEST_SECRET",
      code = "TEST_CODE", redirect_uri = "http://localhost:8400/callback",
      authority_host = helper.endpoint(),
    }
  end

  it("exchanges the code, then refreshes with the rotated refresh tokens", function()
    local credential = code_credential()
    assert.is_string((credential:get_token()))
    local first = last_token_request()
    assert.equals("authorization_code", first.form.grant_type)
    assert.equals("TEST_CODE", first.form.code)
    assert.equals("http://localhost:8400/callback", first.form.redirect_uri)

    local used = {}
    for _ = 1, 3 do
      credential:invalidate()
      local token, err = credential:get_token()
      assert.is_string(token, tostring(err))
      local seen = last_token_request()
      assert.equals("refresh_token", seen.form.grant_type)
      -- the server refuses a refresh token twice: each success used a new one
      assert.is_nil(used[seen.form.refresh_token])
      used[seen.form.refresh_token] = true
    end
  end)

  it("starts from a refresh token with refresh_token{}", function()
    local credential = la.credentials.refresh_token {
      tenant = "TEST_TENANT", client_id = "TEST_CLIENT", client_secret = "TEST_SECRET",
      refresh_token = "TEST_REFRESH_TOKEN", authority_host = helper.endpoint(),
    }
    assert.is_string((credential:get_token()))
    credential:invalidate()
    local token, err = credential:get_token()
    assert.is_string(token, tostring(err))
  end)

  it("builds authorize URLs the identity provider reads back", function()
    for _, response_type in ipairs { "code", "token" } do
      local url = la.authorize_url {
        tenant = "TEST_TENANT", client_id = "TEST_CLIENT", redirect_uri = "http://localhost:8400/callback",
        response_type = response_type, state = "xyz 1", authority_host = helper.endpoint(),
      }
      assert.matches("^" .. helper.endpoint():gsub("%p", "%%%0") .. "/TEST_TENANT/oauth2/v2%.0/authorize%?", url)
      local pipe = io.popen("curl -s '" .. url .. "'")
      local echoed = pipe:read("*a")
      pipe:close()
      local params = require("loganalytics.core").decode_json(echoed:match("%b{}"))
      assert.equals(response_type, params.response_type)
      assert.equals("TEST_CLIENT", params.client_id)
      assert.equals("xyz 1", params.state)
      assert.equals("http://localhost:8400/callback", params.redirect_uri)
      assert.matches("https://api.loganalytics.io/.default", params.scope, 1, true)
    end
  end)
end)

describe("client_certificate", function()
  local function cert_credential(extra)
    local o = { tenant = "TEST_TENANT", client_id = "TEST_CERT_CLIENT",
                certificate = helper.certificate_path(), authority_host = helper.endpoint() }
    for k, v in pairs(extra or {}) do o[k] = v end
    return la.credentials.client_certificate(o)
  end

  it("signs a client assertion the identity provider verifies (PEM path)", function()
    local token, err = cert_credential():get_token()
    assert.is_string(token, tostring(err))
    local seen = last_token_request()
    assert.equals("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", seen.form.client_assertion_type)
    assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+$", seen.form.client_assertion)
  end)

  it("takes PEM text and an encrypted key with its password", function()
    assert.is_string((cert_credential { certificate = helper.read_file(helper.certificate_path()) }:get_token()))
    assert.is_string((cert_credential { certificate = helper.certificate_path("both-enc.pem"),
                                        password = "TEST_CERT_PASSWORD" }:get_token()))
  end)

  it("says a wrong password is wrong, without saying the password", function()
    local token, err = cert_credential { certificate = helper.certificate_path("both-enc.pem"),
                                         password = "NOT_THE_PASSWORD" }:get_token()
    assert.is_nil(token)
    assert.equals("auth", err.kind)
    assert.matches("password", err.message)
    assert.is_nil(tostring(err):find("NOT_THE_PASSWORD", 1, true))
  end)

  it("is refused by the identity provider for another client's certificate", function()
    local token, err = cert_credential { client_id = "TEST_CLIENT" }:get_token()
    assert.is_nil(token)
    assert.equals("auth", err.kind)
    assert.is_string(err.code)
  end)

  it("raises when the certificate file does not exist", function()
    assert.has_error(function() cert_credential { certificate = "/nonexistent/cert.pem" } end)
  end)
end)

describe("managed_identity", function()
  it("gets a token from IMDS at the address given", function()
    local credential = la.credentials.managed_identity { imds_endpoint = helper.endpoint() }
    local token, err = credential:get_token()
    assert.is_string(token, tostring(err))
    local seen = last_token_request()
    assert.equals("true", seen.headers.metadata)
    assert.matches("/metadata/identity/oauth2/token?", seen.path, 1, true)
    assert.matches("resource=https%3A%2F%2Fapi.loganalytics.io", seen.path, 1, true)
  end)

  it("asks for a user-assigned identity and reports an unknown one", function()
    local ok = la.credentials.managed_identity { imds_endpoint = helper.endpoint(), client_id = "TEST_MI_CLIENT" }
    assert.is_string((ok:get_token()))
    assert.matches("client_id=TEST_MI_CLIENT", last_token_request().path, 1, true)
    local bad = la.credentials.managed_identity { imds_endpoint = helper.endpoint(), object_id = "NOBODY" }
    local token, err = bad:get_token()
    assert.is_nil(token)
    assert.equals("auth", err.kind)
    assert.equals(400, err.status)
  end)

  it("uses App Service's identity endpoint and header", function()
    local credential = la.credentials.managed_identity {
      identity_endpoint = helper.endpoint() .. "/msi/token", identity_header = "TEST_IDENTITY_HEADER",
    }
    local token, err = credential:get_token()
    assert.is_string(token, tostring(err))
    local seen = last_token_request()
    assert.equals("TEST_IDENTITY_HEADER", seen.headers["x-identity-header"])
    assert.matches("api-version=2019-08-01", seen.path, 1, true)
  end)

  it("raises for more than one identity selector", function()
    assert.has_error(function()
      la.credentials.managed_identity { client_id = "a", object_id = "b" }
    end)
  end)
end)

describe("workload_identity", function()
  local function with_token_file(text)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
  end

  it("presents the federated token from the file as the assertion", function()
    local credential = la.credentials.workload_identity {
      tenant = "TEST_TENANT", client_id = "TEST_WORKLOAD_CLIENT",
      token_file = with_token_file("TEST_FEDERATED_TOKEN\n"), authority_host = helper.endpoint(),
    }
    local token, err = credential:get_token()
    assert.is_string(token, tostring(err))
    assert.equals("TEST_FEDERATED_TOKEN", last_token_request().form.client_assertion)
  end)

  it("fails with an auth error for a wrong or missing token file", function()
    local wrong = la.credentials.workload_identity {
      tenant = "TEST_TENANT", client_id = "TEST_WORKLOAD_CLIENT",
      token_file = with_token_file("SOMETHING_ELSE"), authority_host = helper.endpoint(),
    }
    local _, err = wrong:get_token()
    assert.equals("auth", err.kind)
    assert.equals("invalid_client", err.code)
    local missing = la.credentials.workload_identity {
      tenant = "TEST_TENANT", client_id = "TEST_WORKLOAD_CLIENT",
      token_file = "/nonexistent/token", authority_host = helper.endpoint(),
    }
    local _, err2 = missing:get_token()
    assert.equals("auth", err2.kind)
    assert.matches("token file", err2.message)
  end)
end)

describe("workspaces by name", function()
  it("are looked up with a token for the management audience, then queried over v1", function()
    local client = la.new {
      workspace = { subscription = "sub-1", resource_group = "rg-1", name = "demo-workspace" },
      endpoint = helper.endpoint(), arm_endpoint = helper.endpoint(), credential = secret_credential(),
    }
    local result, err = client:query("Heartbeat | take 3")
    assert.is_table(result, tostring(err))
    assert.equals(3, #result.tables[1].rows)
    local scopes = {}
    for _, r in ipairs(helper.identity().requests) do scopes[r.form.scope or "?"] = true end
    assert.is_true(scopes["https://management.azure.com/.default"])
    assert.is_true(scopes["https://api.loganalytics.io/.default"])
    -- (identity.py's DEMO_CUSTOMER_ID: demo-workspace's customer id)
    assert.equals("/v1/workspaces/8a1d5c2e-4b7f-4e0a-9c3d-2f6b1e9a7d40/query", helper.last_request().path)
  end)
end)

describe("clouds", function()
  it("set the API endpoint, the audience and the authority together", function()
    local gov = la.new { cloud = "usgov", workspace = "w", token = "t" }
    assert.equals("https://api.loganalytics.us", gov.endpoint)
    assert.equals("https://api.loganalytics.us/.default", gov.query_scope)
    local cn = la.new { cloud = "china", workspace = "w", token = "t" }
    assert.equals("https://api.loganalytics.azure.cn", cn.endpoint)
    assert.equals("https://api.loganalytics.io/.default", la.new { workspace = "w", token = "t" }.query_scope)
    assert.matches("^https://login%.microsoftonline%.us/", la.authorize_url {
      cloud = "usgov", tenant = "t", client_id = "c", redirect_uri = "http://localhost/cb" })
    assert.equals("http://127.0.0.1:1", la.new { cloud = "usgov", endpoint = "http://127.0.0.1:1", token = "t" }.endpoint)
    assert.has_error(function() la.new { cloud = "mars" } end)
  end)
end)
