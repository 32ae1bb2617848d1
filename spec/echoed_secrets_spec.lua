-- Servers that quote the request back: a gateway's HTML 404 or 502, a JSON
-- error, a partial result (the local server's ECHO workspace), and identity
-- endpoints quoting the token request's form (echo_next). Whatever they
-- quote, no secret the client or the credential knows may come out of the
-- module: not in tostring(err), not in any field of the error object, not in
-- a partial result's error, not in a log line. Each secret carries a unique
-- marker, and the check looks for the marker as well as for every form the
-- secret travelled in (URL-encoded, base64 for basic auth), so a secret cut
-- short by an excerpt or mangled by it is caught too.
local helper = require "helper"
local la = require "loganalytics"
local check = require "loganalytics.check"

local function base64(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 4 - (3 - #s:sub(i, i + 2))
    for k = 1, 4 do
      local index = math.floor(n / 64 ^ (4 - k)) % 64
      out[#out + 1] = k <= chars and alphabet:sub(index + 1, index + 1) or "="
    end
  end
  return table.concat(out)
end

-- Every string reachable from v, with the path that leads there.
local function strings_of(v, path, out, depth)
  out = out or {}
  depth = depth or 0
  if type(v) == "string" then
    out[#out + 1] = { path, v }
  elseif type(v) == "table" and depth < 20 then
    out[#out + 1] = { path .. " (tostring)", tostring(v) }
    for k, x in pairs(v) do
      strings_of(k, path .. "[key]", out, depth + 1)
      strings_of(x, path .. "." .. tostring(k), out, depth + 1)
    end
  elseif v ~= nil then
    out[#out + 1] = { path, tostring(v) }
  end
  return out
end

-- The forms a secret may appear in: itself, its marker (a prefix), URL-encoded,
-- and, when it is long, any 16-character window (a cut-off copy).
local function forms_of(secret, marker)
  local forms = { secret, check.escape(secret) }
  if marker then forms[#forms + 1] = marker end
  if #secret >= 24 then
    for i = 1, #secret - 15, 4 do forms[#forms + 1] = secret:sub(i, i + 15) end
  end
  return forms
end

local function assert_free(said, secrets)
  assert.is_true(#said > 0)
  for _, entry in ipairs(said) do
    for name, forms in pairs(secrets) do
      for _, form in ipairs(forms) do
        local at = entry[2]:find(form, 1, true)
        assert(not at, ("the %s (as %q) appears in %s: %s"):format(name, form, entry[1],
          at and entry[2]:sub(math.max(1, at - 60), at + #form + 20) or ""))
      end
    end
  end
end

local KEY_MARKER = "LEAKY_KEY_7d2f"
-- characters that every encoding changes: URL, HTML, JSON, basic auth
local API_KEY = KEY_MARKER .. "+/=&% ~\"<x>'\195\169;"
local STATIC_TOKEN = "LEAKY_STATIC_TOKEN_31f0.abc"
local FN_TOKEN = "LEAKY_FN_TOKEN_88aa+/="

local ECHOES = { "html404", "html404:150", "html404:170", "gateway502", "gateway502:160",
                 "json400", "partial", "text401" }

describe("secrets echoed by a server", function()
  local endpoint
  setup(function()
    endpoint = helper.endpoint()
    helper.configure_identity('{"reset": true}')
  end)

  -- Runs every echo on a client made with auth options; returns all it said.
  local function run_echoes(auth)
    local said = {}
    local o = { endpoint = endpoint, workspace = "ECHO", max_retries = 1, retry_delay = 0.01,
                log = function(level, message) said[#said + 1] = { "log " .. level, message } end }
    for k, v in pairs(auth) do o[k] = v end
    local client = la.new(o)
    said[#said + 1] = { "tostring(client)", tostring(client) }
    for _, echo in ipairs(ECHOES) do
      local result, err = client:query(echo)
      if echo == "partial" then
        assert.is_table(result, tostring(err))
        assert.equals("partial", result.status)
        err = result.error
      end
      assert(la.is_error(err), echo .. " gave no error")
      said[#said + 1] = { echo .. " tostring(err)", tostring(err) }
      for _, entry in ipairs(strings_of(err, echo .. " err")) do said[#said + 1] = entry end
      -- rows() raises the same error objects
      local ok, raised = pcall(function() for _ in client:rows(echo) do end end)
      if not ok then
        for _, entry in ipairs(strings_of(raised, echo .. " rows()")) do said[#said + 1] = entry end
      end
    end
    -- the echoes were seen: the server did quote something of each
    assert.is_true(#said > #ECHOES * 4)
    return said
  end

  local key_forms = forms_of(API_KEY, KEY_MARKER)
  key_forms[#key_forms + 1] = base64(API_KEY .. ":")
  key_forms[#key_forms + 1] = base64(API_KEY .. ":"):sub(1, 16)

  for _, how in ipairs { "header", "query", "basic" } do
    it("never show the api key sent as " .. how, function()
      local said = run_echoes { api_key = API_KEY, api_key_in = how }
      local text = {}
      for _, entry in ipairs(said) do text[#text + 1] = entry[2] end
      -- the pages were understood: the status and the non-secret parts are there
      text = table.concat(text, "\n")
      assert.matches("HTTP 404", text, 1, true)
      assert.matches("502", text, 1, true)
      assert.matches("/v1/workspaces/ECHO/query", text, 1, true)
      assert_free(said, { ["api key"] = key_forms })
    end)
  end

  it("never show a static token", function()
    assert_free(run_echoes { token = STATIC_TOKEN },
                { ["static token"] = forms_of(STATIC_TOKEN, "LEAKY_STATIC_TOKEN") })
  end)

  it("never show a token from a token function", function()
    assert_free(run_echoes { token = function() return FN_TOKEN, os.time() + 3600 end },
                { ["function's token"] = forms_of(FN_TOKEN, "LEAKY_FN_TOKEN") })
  end)

  it("never show a credential's token, nor its client secret", function()
    local credential = la.credentials.client_secret { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = "TEST_SECRET", authority_host = endpoint }
    local token = assert(credential:get_token())
    assert_free(run_echoes { credential = credential },
                { ["credential's token"] = forms_of(token), ["client secret"] = { "TEST_SECRET" } })
  end)
end)

describe("secrets echoed by an identity endpoint", function()
  local endpoint
  setup(function() endpoint = helper.endpoint() end)
  before_each(function() helper.configure_identity('{"reset": true}') end)

  local function last_form()
    local requests = helper.identity().requests
    return requests[#requests].form
  end

  -- The error of one get_token answered by an echo, also through a client.
  local function echoed(credential)
    helper.configure_identity('{"echo_next": 2}')
    local token, err = credential:get_token()
    assert.is_nil(token)
    assert(la.is_error(err))
    local said = strings_of(err, "err")
    said[#said + 1] = { "tostring(err)", tostring(err) }
    -- it is the echo that was read: its code and trace are the server's
    assert.matches("AADSTS900000", tostring(err), 1, true)
    local logged = {}
    local client = la.new { endpoint = endpoint, workspace = "DEMO_WORKSPACE", credential = credential,
      log = function(level, message) logged[#logged + 1] = { "log " .. level, message } end }
    local _, client_err = client:query("Heartbeat | take 1")
    assert(la.is_error(client_err))
    for _, entry in ipairs(strings_of(client_err, "client err")) do said[#said + 1] = entry end
    for _, entry in ipairs(logged) do said[#said + 1] = entry end
    return said
  end

  it("never show the client secret (in every encoding)", function()
    local secret = "LEAKY_SECRET_51c9+/=&% ~\"<x>'"
    local said = echoed(la.credentials.client_secret { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = secret, authority_host = endpoint })
    assert.equals(secret, last_form().client_secret)  -- the server had it to quote
    assert_free(said, { ["client secret"] = forms_of(secret, "LEAKY_SECRET") })
  end)

  it("never show the client assertion (a signed JWT, longer than the message)", function()
    local said = echoed(la.credentials.client_certificate { tenant = "TEST_TENANT",
      client_id = "TEST_CERT_CLIENT", certificate = helper.certificate_path("both-enc.pem"),
      password = "TEST_CERT_PASSWORD", authority_host = endpoint })
    local assertion = last_form().client_assertion
    assert.is_true(#assertion > 500)
    assert_free(said, { assertion = forms_of(assertion), password = { "TEST_CERT_PASSWORD" } })
  end)

  it("never show the refresh token nor the code, also a rotated refresh token", function()
    local said = echoed(la.credentials.refresh_token { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = "LEAKY_SECRET_77aa", refresh_token = "LEAKY_REFRESH_7e21", authority_host = endpoint })
    assert_free(said, { ["refresh token"] = { "LEAKY_REFRESH" }, ["client secret"] = { "LEAKY_SECRET" } })

    said = echoed(la.credentials.authorization_code { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      code = "LEAKY_CODE_19af", redirect_uri = "http://localhost:8400/callback", authority_host = endpoint })
    assert_free(said, { code = { "LEAKY_CODE" } })

    -- a real exchange, then a refresh with the refresh token it brought
    local credential = la.credentials.authorization_code { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = "TEST_SECRET", code = "TEST_CODE", redirect_uri = "http://localhost:8400/callback",
      authority_host = endpoint }
    assert(credential:get_token())
    credential:invalidate()
    said = echoed(credential)
    local rotated = last_form().refresh_token
    assert.matches("^rt%-", rotated)
    assert_free(said, { ["rotated refresh token"] = forms_of(rotated), ["client secret"] = { "TEST_SECRET" } })
  end)

  it("never show a workload identity's federated token nor App Service's identity header", function()
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write("LEAKY_FEDERATED_4b7c\n")
    f:close()
    local said = echoed(la.credentials.workload_identity { tenant = "TEST_TENANT",
      client_id = "TEST_WORKLOAD_CLIENT", token_file = file, authority_host = endpoint })
    os.remove(file)
    assert_free(said, { ["federated token"] = { "LEAKY_FEDERATED" } })

    said = echoed(la.credentials.managed_identity { identity_endpoint = endpoint .. "/msi/token",
      identity_header = "LEAKY_IDHEADER_0c3d" })
    assert_free(said, { ["identity header"] = { "LEAKY_IDHEADER" } })
  end)
end)

describe("the C core's token errors", function()
  it("are redacted by the core itself, before they are cut to fit", function()
    helper.configure_identity('{"reset": true}')
    helper.configure_identity('{"echo_next": 1}')
    local core = require "loganalytics.core"
    local secret = "LEAKY_CORE_SECRET_" .. ("s3cr3t+/"):rep(200)  -- longer than the message
    local credential = core.credential("client_secret", { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = secret, authority_host = helper.endpoint() })
    local token, err = credential:get_token("https://api.loganalytics.io/.default", os.time())
    assert.is_nil(token)
    assert.is_table(err)
    assert.matches("AADSTS900000", err.message, 1, true)
    assert_free(strings_of(err, "core err"), { ["client secret"] = forms_of(secret, "LEAKY_CORE") })
    assert.matches("[REDACTED]", err.code, 1, true)
  end)
end)

describe("a secret set (loganalytics.redact)", function()
  local redaction = require "loganalytics.redact"

  it("redacts a secret in every form it travels in, keys and nested fields too", function()
    local set = redaction.new()
    local key = "k&y <\"é\"> +/="
    set:add_basic(key, "")
    local forms = { key, check.escape(key), check.escape(key):lower(),
                    "k&amp;y &lt;&quot;\195\169&quot;&gt; +/=", "k&amp;y &lt;&#34;\195\169&#34;&gt; +/=",
                    "k&y <\\\"\195\169\\\"> +/=", "k&y <\\\"\195\169\\\"> +\\/=", base64(key .. ":"),
                    "k&y <\"\195\131\194\169\"> +/=" }
    for _, form in ipairs(forms) do
      assert.equals("a [REDACTED] b", set:text("a " .. form .. " b"))
    end
    local e = set:error { message = "x " .. key, details = { { [key] = key } }, n = 1 }
    assert.equals("x [REDACTED]", e.message)
    assert.equals("[REDACTED]", e.details[1]["[REDACTED]"])
    assert.equals(1, e.n)
    -- and any JWT, known or not
    assert.equals("token [REDACTED] end", set:text("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln end"))
    -- nothing to see from outside
    for _, v in pairs(set) do assert.is_function(v) end
    assert.not_matches("k&y", tostring(set), 1, true)
  end)

  it("keeps only the newest access tokens", function()
    local set = redaction.new()
    for i = 1, 20 do set:add("TOKEN_" .. ("%02d"):format(i), true) end
    assert.equals("TOKEN_01 [REDACTED]", set:text("TOKEN_01 TOKEN_20"))
  end)
end)
