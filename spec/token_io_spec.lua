-- Token requests without the C core's own HTTP (sans-I/O credentials):
-- credential:get_token(scope, { perform = f }) has the core build the token
-- request (token_request), sends it with f, and has the core read the answer
-- (token_answer) or the failure (token_failed). Here f is the curl command
-- line tool run through io.popen (real HTTP on 127.0.0.1, no libcurl binding
-- involved), against the local identity server; every flow is compared with
-- the same credential asking through libcurl.
local helper = require "helper"
local la = require "loganalytics"

local shell_quote = helper.shell_quote

local function temp_file(text)
  local path = os.tmpname()  -- mkstemp: mode 0600
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- A transport.perform over the curl CLI; `log` gets every request table;
-- `rewrite(url)` may send it elsewhere (a closed port).
local function curl_perform(log, rewrite)
  return function(request)
    log[#log + 1] = request
    local head = os.tmpname()
    local header_file = temp_file(table.concat(request.headers, "\n") .. "\n")
    local body_file = request.body and temp_file(request.body)
    local args = { "curl", "-s", "-S", "-X", request.method, "-D", head, "-H", "@" .. header_file,
                   "--connect-timeout", tostring(request.connect_timeout),
                   "--max-time", tostring(request.timeout) }
    if body_file then args[#args + 1] = "--data-binary"; args[#args + 1] = "@" .. body_file end
    if request.user_agent then args[#args + 1] = "-A"; args[#args + 1] = request.user_agent end
    if request.no_proxy then args[#args + 1] = "--noproxy"; args[#args + 1] = "*" end
    if request.proxy then args[#args + 1] = "-x"; args[#args + 1] = request.proxy end
    args[#args + 1] = rewrite and rewrite(request.url) or request.url
    for i, a in ipairs(args) do args[i] = shell_quote(a) end
    -- curl's exit status after the body (pipe:close() gives none on Lua 5.1)
    local pipe = assert(io.popen(table.concat(args, " ") .. " 2>/dev/null; printf '\\n%d' $?"))
    local out = pipe:read("*a")
    pipe:close()
    local body, code = out:match("^(.*)\n(%d+)$")
    code = tonumber(code)
    local status
    local f = io.open(head, "rb")
    if f then
      for line in f:lines() do status = tonumber(line:match("^HTTP/[%d.]+ (%d%d%d)")) or status end
      f:close()
    end
    os.remove(head)
    os.remove(header_file)
    if body_file then os.remove(body_file) end
    if code ~= 0 or not status then
      return { transport = { kind = code == 28 and "timeout" or "network",
                             message = "curl exited with " .. tostring(code) } }
    end
    return { status = status, body = body }
  end
end

local function last_request()
  local requests = helper.identity().requests
  return requests[#requests]
end

-- the form (or IMDS query) fields a token request carried, and their values
-- except a client assertion (a JWT signed anew each time)
local function fields_of(seen)
  local out = {}
  for k, v in pairs(seen.form) do out[k] = k == "client_assertion" and "(assertion)" or v end
  return out
end

-- an error with what changes between two answers (trace and correlation
-- ids, timestamps) taken out
local function comparable(err)
  local function norm(s)
    if type(s) ~= "string" then return s end
    return (s:gsub("%x+%-%x+%-%x+%-%x+%-%x+", "<id>"):gsub("%d+%-%d+%-%d+ %d+:%d+:%d+Z", "<time>"))
  end
  return { kind = err.kind, status = err.status, code = err.code, error_code = err.error_code,
           message = norm(err.message), correlation_id = norm(err.correlation_id) }
end

local function with_token_file(text)
  return temp_file(text)
end

local endpoint
setup(function() endpoint = helper.endpoint() end)
before_each(function() helper.configure_identity('{"reset": true}') end)

-- every kind of core credential, made anew for each use
local kinds = {
  client_secret = function(extra)
    local o = { tenant = "TEST_TENANT", client_id = "TEST_CLIENT", client_secret = "TEST_SECRET",
                authority_host = endpoint }
    for k, v in pairs(extra or {}) do o[k] = v end
    return la.credentials.client_secret(o)
  end,
  client_certificate = function()
    return la.credentials.client_certificate { tenant = "TEST_TENANT", client_id = "TEST_CERT_CLIENT",
      certificate = helper.certificate_path("both-enc.pem"), password = "TEST_CERT_PASSWORD",
      authority_host = endpoint }
  end,
  workload_identity = function()
    return la.credentials.workload_identity { tenant = "TEST_TENANT", client_id = "TEST_WORKLOAD_CLIENT",
      token_file = with_token_file("TEST_FEDERATED_TOKEN\n"), authority_host = endpoint }
  end,
  refresh_token = function()
    return la.credentials.refresh_token { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = "TEST_SECRET", refresh_token = "TEST_REFRESH_TOKEN", authority_host = endpoint }
  end,
  authorization_code = function()
    return la.credentials.authorization_code { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
      client_secret = "TEST_SECRET", code = "TEST_CODE", redirect_uri = "http://localhost:8400/callback",
      authority_host = endpoint }
  end,
  managed_identity_imds = function()
    return la.credentials.managed_identity { imds_endpoint = endpoint, client_id = "TEST_MI_CLIENT" }
  end,
  managed_identity_app_service = function()
    return la.credentials.managed_identity { identity_endpoint = endpoint .. "/msi/token",
      identity_header = "TEST_IDENTITY_HEADER" }
  end,
}
local order = { "client_secret", "client_certificate", "workload_identity", "refresh_token",
                "authorization_code", "managed_identity_imds", "managed_identity_app_service" }

describe("get_token with transport.perform", function()
  for _, name in ipairs(order) do
    it(name .. ": the same token request and answer as through libcurl, then the cache", function()
      local t0 = os.time()
      local token, expires_on, refresh_on = kinds[name]():get_token()
      assert.is_string(token, tostring(expires_on))
      local through_curl = last_request()
      helper.configure_identity('{"reset": true}')

      local log = {}
      local credential = kinds[name]()
      local got, got_expires, got_refresh = credential:get_token(nil, { perform = curl_perform(log) })
      assert.is_string(got, tostring(got_expires))
      assert.equals(1, #log)
      assert.matches("^at%-%d+%-%x+$", got)
      assert.are_not.equal(token, got)  -- a new one, from the server
      assert.is_true(math.abs((got_expires - expires_on) - (os.time() - t0)) <= 2)
      assert.is_true(math.abs((got_refresh - refresh_on) - (os.time() - t0)) <= 2)
      local through_perform = last_request()
      assert.equals(through_curl.method, through_perform.method)
      assert.equals(through_curl.path, through_perform.path)
      assert.same(fields_of(through_curl), fields_of(through_perform))
      assert.equals(200, through_perform.status)

      -- the cache answers the second time: no request at all
      assert.equals(got, (credential:get_token(nil, { perform = curl_perform(log) })))
      assert.equals(1, #log)
      assert.equals(1, helper.identity().token_requests)
      -- the token obtained is one of the credential's secrets
      local e = require("loganalytics.errors").new({ kind = "auth", message = "x " .. got }, credential._secrets)
      assert.is_nil(tostring(e):find(got, 1, true))
    end)
  end

  it("keeps the rotated refresh token and uses a code once", function()
    local log = {}
    local credential = kinds.authorization_code()
    local transport = { perform = curl_perform(log) }
    assert.is_string((credential:get_token(nil, transport)))
    assert.equals("authorization_code", last_request().form.grant_type)
    local used = {}
    for _ = 1, 3 do
      credential:invalidate()
      local token, err = credential:get_token(nil, transport)
      assert.is_string(token, tostring(err))
      local seen = last_request()
      assert.equals("refresh_token", seen.form.grant_type)
      assert.matches("^rt%-", seen.form.refresh_token)
      assert.is_nil(used[seen.form.refresh_token])
      used[seen.form.refresh_token] = true
    end
    assert.equals(4, #log)
  end)

  it("gives the request's method, URL, headers, body and transport settings", function()
    -- the table transport.perform is given (here before it is sent: the proxy is no proxy)
    local ok, r = kinds.client_secret{ user_agent = "own/1" }._core:token_request(
      "https://api.loganalytics.io/.default", os.time(),
      { perform = curl_perform {}, timeout = 7, ca_file = "/tmp/ca.pem", proxy = "http://127.0.0.1:9",
        insecure = false })
    assert.is_false(ok)
    assert.equals("POST", r.method)
    assert.equals(endpoint .. "/TEST_TENANT/oauth2/v2.0/token", r.url)
    assert.same({ "Accept: application/json", "Content-Type: application/x-www-form-urlencoded" }, r.headers)
    assert.matches("client_secret=TEST_SECRET", r.body, 1, true)
    assert.equals("own/1", r.user_agent)
    assert.equals(10, r.connect_timeout)
    assert.equals(7, r.timeout)
    assert.equals(60, r.stall_timeout)
    assert.equals("/tmp/ca.pem", r.ca_file)
    assert.equals("http://127.0.0.1:9", r.proxy)
    assert.is_false(r.insecure)
    assert.is_false(r.no_proxy)
    assert.is_true(r.carries_secret)
    assert.is_false(r.allow_http)

    local log = {}
    assert(kinds.managed_identity_app_service():get_token(nil,
      { perform = curl_perform(log), proxy = "http://127.0.0.1:9" }))
    r = log[1]
    assert.equals("GET", r.method)
    assert.is_nil(r.body)
    assert.same({ "Accept: application/json", "X-IDENTITY-HEADER: TEST_IDENTITY_HEADER" }, r.headers)
    assert.is_nil(r.proxy)
    assert.is_true(r.no_proxy)
    assert.is_false(r.carries_secret)
    assert.equals(30, r.timeout)
  end)

  it("goes through default()'s chain to managed identity", function()
    local log = {}
    local credential = la.credentials.default { imds_endpoint = endpoint }
    local token, err = credential:get_token(nil, { perform = curl_perform(log) })
    assert.is_string(token, tostring(err))
    assert.is_true(#log >= 1)
    assert.matches("/metadata/identity/oauth2/token?", log[#log].url, 1, true)
    assert.same({ "Accept: application/json", "Metadata: true" }, log[#log].headers)
  end)
end)

describe("token requests of coroutines that yield in perform (as on cosockets)", function()
  -- runs the functions as coroutines, round robin, until all are done
  local function run_all(...)
    local threads, results = {}, {}
    for i, f in ipairs { ... } do
      threads[i] = coroutine.create(function() results[i] = { f() } end)
    end
    local live = #threads
    while live > 0 do
      live = 0
      for _, co in ipairs(threads) do
        if coroutine.status(co) ~= "dead" then
          local ok, err = coroutine.resume(co)
          assert(ok, err)
          if coroutine.status(co) ~= "dead" then live = live + 1 end
        end
      end
    end
    return results
  end

  it("make one token request per credential at a time: the others wait for its answer", function()
    local log = {}
    local send = curl_perform(log)
    local transport = {
      perform = function(request)
        coroutine.yield()  -- the others run meanwhile
        return send(request)
      end,
      sleep = function() coroutine.yield() end,
    }
    local credential = kinds.client_certificate()
    local other = "https://management.azure.com/.default"
    local results = run_all(
      function() return credential:get_token(nil, transport) end,
      function() return credential:get_token(nil, transport) end,
      function() return credential:get_token(other, transport) end)
    assert.is_string(results[1][1], tostring(results[1][2]))
    assert.equals(results[1][1], results[2][1])
    assert.is_string(results[3][1], tostring(results[3][2]))
    assert.are_not.equal(results[1][1], results[3][1])
    assert.equals(2, #log)
    assert.equals(2, helper.identity().token_requests)
  end)
end)

describe("token errors with transport.perform", function()
  local cases = {
    { "client_secret 401", function() return kinds.client_secret { client_secret = "bad_secret" } end },
    { "workload_identity 401", function()
      return la.credentials.workload_identity { tenant = "TEST_TENANT", client_id = "TEST_WORKLOAD_CLIENT",
        token_file = with_token_file("SOMETHING_ELSE"), authority_host = endpoint }
    end },
    { "authorization_code 400", function()
      return la.credentials.authorization_code { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
        code = "NOT_A_CODE", redirect_uri = "http://localhost:8400/callback", authority_host = endpoint }
    end },
    { "IMDS 400", function()
      return la.credentials.managed_identity { imds_endpoint = endpoint, object_id = "NOBODY" }
    end },
    { "App Service 401", function()
      return la.credentials.managed_identity { identity_endpoint = endpoint .. "/msi/token",
        identity_header = "WRONG_HEADER" }
    end },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. ": the same error object as through libcurl", function()
      local _, want = case[2]():get_token()
      assert.is_table(want)
      local log = {}
      local token, got = case[2]():get_token(nil, { perform = curl_perform(log) })
      assert.is_nil(token)
      assert.equals(1, #log)
      assert(la.is_error(got))
      assert.same(comparable(want), comparable(got))
      assert.is_true(got.status == 400 or got.status == 401)
    end)
  end

  it("redact an echoed secret (client secret, identity header)", function()
    helper.configure_identity('{"echo_next": 1}')
    local log = {}
    local _, err = kinds.client_secret { client_secret = "LEAKY_SECRET_5e+/" }:get_token(nil,
      { perform = curl_perform(log) })
    assert.equals(1, #log)
    assert.equals(400, err.status)
    assert.matches("AADSTS900000", err.message, 1, true)
    assert.matches("[REDACTED]", err.message, 1, true)
    for _, s in ipairs { tostring(err), err.message, err.code or "", err.correlation_id or "" } do
      assert.is_nil(s:find("LEAKY_SECRET", 1, true), s)
    end
    helper.configure_identity('{"echo_next": 1}')
    _, err = la.credentials.managed_identity { identity_endpoint = endpoint .. "/msi/token",
      identity_header = "LEAKY_IDHEADER_0c3d" }:get_token(nil, { perform = curl_perform(log) })
    assert.equals(2, #log)
    assert.matches("AADSTS900000", err.message, 1, true)
    for _, s in ipairs { tostring(err), err.message, err.code or "", err.correlation_id or "" } do
      assert.is_nil(s:find("LEAKY_IDHEADER", 1, true), s)
    end
  end)

  it("keep the old token until it expires when the request cannot be sent", function()
    helper.configure_identity('{"expires_in": 4, "refresh_in": 1}')
    local credential = kinds.client_secret()
    local token = assert(credential:get_token(nil, { perform = curl_perform {} }))
    os.execute("sleep 1.2")
    local closed = helper.closed_port()
    local log = {}
    local broken = { perform = curl_perform(log, function(url)
      return (url:gsub("127%.0%.0%.1:%d+", "127.0.0.1:" .. closed))
    end) }
    assert.equals(token, (credential:get_token(nil, broken)))  -- refresh failed: the old one
    assert.equals(1, #log)
    os.execute("sleep 3.2")
    local none, err = credential:get_token(nil, broken)
    assert.is_nil(none)
    assert.equals("network", err.kind)
    assert.matches("token request failed: curl exited with 7", err.message, 1, true)
  end)
end)

describe("the core's token_request/token_answer/token_failed", function()
  local scope = "https://api.loganalytics.io/.default"

  it("refuse an answer without a request, for another scope, or not a string", function()
    local core = kinds.client_secret()._core
    assert.has_error(function() core:token_answer(scope, os.time(), 200, "{}") end,
      "no token request under way")
    assert.has_error(function() core:token_failed(scope, os.time(), "network", "x") end,
      "no token request under way")
    local ok, request = core:token_request(scope, os.time())
    assert.is_false(ok)
    assert.is_table(request)
    assert.has_error(function() core:token_answer("other/.default", os.time(), 200, "{}") end,
      "the token request under way is for another scope")
    assert.has_error(function() core:token_answer(scope, os.time(), 200, nil) end)
    assert.has_error(function() core:token_answer(scope, os.time(), 42, "{}") end)
    assert.has_error(function() core:token_failed(scope, os.time(), "bogus", "x") end)
    -- the request is still under way: its answer is taken
    local token, expires_on = core:token_answer(scope, os.time(),
      200, '{"access_token":"at-x","expires_in":3600}')
    assert.equals("at-x", token)
    assert.is_true(expires_on >= os.time() + 3598)
    -- once only
    assert.has_error(function() core:token_answer(scope, os.time(), 200, "{}") end,
      "no token request under way")
    -- and now the cache answers
    assert.equals("at-x", (core:token_request(scope, os.time())))
  end)

  it("read a huge answer as libcurl keeps it (cut at 1 MiB), without crashing", function()
    local core = kinds.client_secret()._core
    assert.is_false((core:token_request(scope, os.time())))
    local huge = '{"access_token":"' .. ("a"):rep(3 * 1024 * 1024) .. '"}'
    local token, err = core:token_answer(scope, os.time(), 200, huge)
    assert.is_nil(token)
    assert.equals("protocol", err.kind)
    assert.is_false((core:token_request(scope, os.time())))
    token, err = core:token_answer(scope, os.time(), 503, ("x"):rep(2 * 1024 * 1024))
    assert.is_nil(token)
    assert.equals("auth", err.kind)
    assert.equals(503, err.status)
    assert.equals("the identity endpoint answered HTTP 503", err.message)
  end)

  it("redact a transport's message of what the request carried, and keep its kind", function()
    local core = kinds.client_secret { client_secret = "LEAKY_SECRET_1f+&" }._core
    assert.is_false((core:token_request(scope, os.time())))
    local token, err = core:token_failed(scope, os.time(), "timeout",
      "stalled sending client_secret=LEAKY_SECRET_1f%2B%26 and LEAKY_SECRET_1f+&")
    assert.is_nil(token)
    assert.equals("timeout", err.kind)
    assert.equals("token request failed: stalled sending client_secret=[REDACTED] and [REDACTED]", err.message)
    core = la.credentials.managed_identity { identity_endpoint = endpoint .. "/msi/token",
      identity_header = "LEAKY_IDHEADER_9a" }._core
    assert.is_false((core:token_request(scope, os.time())))
    token, err = core:token_failed(scope, os.time(), "network", "X-IDENTITY-HEADER: LEAKY_IDHEADER_9a")
    assert.equals("token request failed: X-IDENTITY-HEADER: [REDACTED]", err.message)
    -- and a certificate's signed assertion, which only the request held
    core = kinds.client_certificate()._core
    local _, request = core:token_request(scope, os.time())
    local assertion = request.body:match("client_assertion=([^&]+)")
    assert.is_true(#assertion > 500)
    token, err = core:token_failed(scope, os.time(), "protocol", "bad answer to " .. assertion)
    assert.equals("protocol", err.kind)
    assert.equals("token request failed: bad answer to [REDACTED]", err.message)
  end)

  it("get_token refuses a perform that is no function or answers no response", function()
    local credential = kinds.client_secret()
    local scope = "https://api.loganalytics.io/.default"
    assert.has_error(function() credential:get_token(nil, { perform = "curl" }) end,
      "loganalytics: option 'transport.perform' must be a function, got string")
    assert.has_error(function() credential:get_token(nil, { perform = function() return 200 end }) end,
      "loganalytics: transport.perform must return a response table, got number")
    assert.has_error(function()
      credential:get_token(nil, { perform = function() return { status = "200", body = "{}" } end })
    end, "loganalytics: transport.perform's response must have an HTTP status (or a transport failure), got 200")
    -- the request it was given is dropped (its secrets wiped)
    assert.has_error(function() credential._core:token_answer(scope, os.time(), 200, "{}") end,
      "no token request under way")
    local t0 = os.time()
    -- a perform that raises: raised as it is, the request dropped (on PUC Lua 5.1, where
    -- perform is called without pcall so that it may yield, by the next request)
    assert.has_error(function() credential:get_token(nil, { perform = function() error("boom", 0) end }) end,
      "boom")
    if _VERSION ~= "Lua 5.1" or jit then
      assert.has_error(function() credential._core:token_answer(scope, os.time(), 200, "{}") end,
        "no token request under way")
    end
    -- and a coroutine whose perform raised (dead) holds up no other
    local co = coroutine.create(function()
      return credential:get_token(nil, { perform = function() coroutine.yield() error("late boom", 0) end })
    end)
    assert(coroutine.resume(co))
    local resumed, why = coroutine.resume(co)
    assert.is_false(resumed)
    assert.equals("late boom", why)
    assert.equals(0, helper.identity().token_requests)
    local token, err = credential:get_token(nil, { perform = curl_perform {} })
    assert.is_string(token, tostring(err))
    assert.is_true(os.time() - t0 <= 1)
  end)

  it("a request of a closed credential is refused", function()
    local core = kinds.client_secret()._core
    core:close()
    assert.has_error(function() core:token_request(scope, os.time()) end, "credential is closed")
  end)
end)
