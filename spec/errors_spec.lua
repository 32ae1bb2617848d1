-- Failures of the world come back as nil, err with the fields of API.md.
local helper = require "helper"
local la = require "loganalytics"

local function bare_client(options)
  local o = { endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE" }
  for k, v in pairs(options or {}) do o[k] = v end
  return la.new(o)
end

-- Runs a query that must fail and returns err.
local function failing(client, kql, opts)
  local result, err = client:query(kql, opts)
  assert(result == nil, "the query was expected to fail but succeeded")
  assert.is_table(err)
  return err
end

local function fixture_error(client, name)
  return failing(client, name, { workspace = "FIXTURES" })
end

local innermost_message = helper.innermost_message

local function assert_one_line(err)
  local text = tostring(err)
  assert.is_string(text)
  assert.is_true(#text > 0)
  assert(not text:find("[\r\n]"), "tostring(err) spans several lines: " .. ("%q"):format(text))
  return text
end

local UUID = "^%x+%-%x+%-%x+%-%x+%-%x+$"

describe("errors", function()
  describe("authentication failures", function()
    it("give kind 'auth' and status 403 for a wrong API key", function()
      local err = failing(helper.client { api_key = "NOT_THE_KEY" }, "Heartbeat | take 1")
      assert.are.equal("auth", err.kind)
      assert.are.equal(403, err.status)
      assert.are.equal("UnsupportedKeyError", err.code)
      assert_one_line(err)
    end)

    it("give kind 'auth' and status 403 for a wrong bearer token", function()
      local err = failing(bare_client { token = "wrong" }, "Heartbeat | take 1")
      assert.are.equal("auth", err.kind)
      assert.are.equal(403, err.status)
      assert.are.equal("InvalidAuthenticationToken", err.code)
    end)

    it("give kind 'auth' and status 401 when no credential is given", function()
      local err = failing(bare_client(), "Heartbeat | take 1")
      assert.are.equal("auth", err.kind)
      assert.are.equal(401, err.status)
      assert.are.equal("AuthorizationRequiredError", err.code)
    end)

    it("give kind 'auth' when a token function fails, without sending anything", function()
      local c = bare_client { token = function() return nil, "no token today" end }
      helper.reset()
      local err = failing(c, "Heartbeat | take 1")
      assert.are.equal("auth", err.kind)
      assert.is_nil(err.status)
      assert.are.equal(0, helper.get("/_test/stats").requests)
    end)
  end)

  describe("service errors", function()
    local client
    setup(function() client = helper.client() end)

    it("give a KQL syntax error as kind 'service', status 400, BadArgumentError", function()
      local err = failing(client, "completely invalid syntax")
      assert.are.equal("service", err.kind)
      assert.are.equal(400, err.status)
      assert.are.equal("BadArgumentError", err.code)
      assert.are.equal("The request had some invalid properties", err.message)
      assert.are.equal("SyntaxError", err.innererror.code)
      assert.are.equal("SYN0002", err.innererror.innererror.code)
      local text = assert_one_line(err)
      assert.truthy(text:find("Query could not be parsed at 'invalid' on line [1,11]", 1, true), text)
    end)

    it("carry the correlation id from the body and the request id from x-ms-request-id", function()
      local err = failing(client, "completely invalid syntax")
      assert.matches(UUID, err.correlation_id)
      assert.matches(UUID, err.request_id)
      assert.are_not.equal(err.correlation_id, err.request_id)
    end)

    it("give an unknown table as a SemanticError whose innermost message tostring shows", function()
      local err = failing(client, "NoSuchTable | take 1")
      assert.are.equal("service", err.kind)
      assert.are.equal(400, err.status)
      assert.are.equal("BadArgumentError", err.code)
      assert.are.equal("SemanticError", err.innererror.code)
      local inner = innermost_message(err)
      assert.is_string(inner)
      assert.truthy(inner:find("Failed to resolve table or column expression named 'NoSuchTable'", 1, true), inner)
      local text = assert_one_line(err)
      assert.truthy(text:find(inner, 1, true), text)
    end)

    it("give an unknown workspace as a 404 service error", function()
      local err = failing(client, "Heartbeat | take 1", { workspace = "NO_SUCH_WORKSPACE" })
      assert.are.equal("service", err.kind)
      assert.are.equal(404, err.status)
      assert.are.equal("WorkspaceNotFoundError", err.code)
      assert_one_line(err)
    end)

    it("give an HTML error page with status 502 as a readable service error", function()
      local err = fixture_error(client, "html_502")
      assert.are.equal("service", err.kind)
      assert.are.equal(502, err.status)
      assert.is_string(err.message)
      assert.truthy(err.message:find("502 Bad Gateway", 1, true), err.message)
      local text = assert_one_line(err)
      assert.is_nil(text:find("<", 1, true), "markup left in: " .. text)
    end)

    it("take retry_after and the request id from a 429's headers", function()
      local err = fixture_error(client, "throttled_429")
      assert.are.equal(429, err.status)
      assert.are.equal("ThrottledError", err.code)
      assert.are.equal(7, err.retry_after)
      assert.are.equal("5e0f3c1a-9d2b-4c7e-8a61-0b9f2e4d7c33", err.request_id)
      assert.are.equal("c7a1d2e3-0b4f-4a59-8e6d-1f2a3b4c5d6e", err.correlation_id)
    end)

    it("stay on one line when the service's message has line breaks", function()
      local err = fixture_error(client, "multiline_error")
      assert.are.equal("service", err.kind)
      assert.are.equal(400, err.status)
      local text = assert_one_line(err)
      assert.truthy(text:find("first line of the reason", 1, true), text)
      assert.truthy(text:find("second line of the reason", 1, true), text)
    end)
  end)

  describe("transport and protocol failures", function()
    it("give a refused connection as kind 'network' without a status", function()
      local c = la.new { endpoint = "http://127.0.0.1:" .. helper.closed_port(),
                         workspace = "DEMO_WORKSPACE", api_key = "DEMO_KEY", max_retries = 0 }
      local err = failing(c, "Heartbeat | take 1")
      assert.are.equal("network", err.kind)
      assert.is_nil(err.status)
      assert_one_line(err)
    end)

    for _, name in ipairs { "truncate:all_types", "cut:all_types" } do
      it("give a body cut off mid-JSON (" .. name .. ") as kind 'protocol'", function()
        local err = fixture_error(helper.client(), name)
        assert.are.equal("protocol", err.kind)
        assert_one_line(err)
      end)
    end

    it("give a gzip stream that ends early as kind 'protocol', naming gzip", function()
      local err = fixture_error(helper.client(), "gzcut:all_types")
      assert.are.equal("protocol", err.kind)
      assert.matches("gzip", err.message)
      assert_one_line(err)
    end)

    it("give a 200 body that is not JSON as kind 'protocol'", function()
      local err = fixture_error(helper.client(), "not_json")
      assert.are.equal("protocol", err.kind)
      assert.are.equal(200, err.status)
      assert_one_line(err)
    end)
  end)

  describe("the client after a failure", function()
    local failures = {
      { "a syntax error", "completely invalid syntax" },
      { "an unknown table", "NoSuchTable | take 1" },
      { "an unknown workspace", "Heartbeat", { workspace = "NO_SUCH_WORKSPACE" } },
      { "a truncated body", "truncate:all_types", { workspace = "FIXTURES" } },
      { "a body cut by a closed connection", "cut:all_types", { workspace = "FIXTURES" } },
      { "a body that is not JSON", "not_json", { workspace = "FIXTURES" } },
      { "an HTML 502 page", "html_502", { workspace = "FIXTURES" } },
      { "a 429", "throttled_429", { workspace = "FIXTURES" } },
    }
    local client
    setup(function() client = helper.client() end)

    for _, case in ipairs(failures) do
      it("still answers a good query after " .. case[1], function()
        failing(client, case[2], case[3])
        local result, err = client:query("Heartbeat | take 3")
        assert(result, "the query after the failure failed: " .. tostring(err))
        assert.are.equal(3, #result.tables[1].rows)
        assert.are.equal("Heartbeat", result.tables[1].rows[3].Type)
      end)
    end
  end)

  describe("secrets", function()
    -- every string reachable from v, keys included
    local function strings_in(v, out, seen)
      out, seen = out or {}, seen or {}
      if type(v) == "string" then
        out[#out + 1] = v
      elseif type(v) == "table" and not seen[v] then
        seen[v] = true
        for k, x in pairs(v) do
          strings_in(k, out, seen)
          strings_in(x, out, seen)
        end
      end
      return out
    end

    local function assert_no_secret(err, secret)
      local text = tostring(err)
      assert.is_nil(text:find(secret, 1, true), "secret in tostring(err): " .. text)
      for _, s in ipairs(strings_in(err)) do
        assert.is_nil(s:find(secret, 1, true), "secret in a field of err: " .. s)
      end
    end

    local closed = "http://127.0.0.1:"

    local cases = {
      { "a wrong key in the header", "SECRET-KEY-0a9f", {}, "Heartbeat" },
      { "a wrong key in the query string", "SECRET-KEY-0a9f", { api_key_in = "query" }, "Heartbeat" },
      { "a wrong key as Basic auth", "SECRET-KEY-0a9f", { api_key_in = "basic" }, "Heartbeat" },
      { "the demo key in the query string and a syntax error", "DEMO_KEY", { api_key_in = "query" },
        "completely invalid syntax" },
      { "the demo key in the query string and a truncated body", "DEMO_KEY", { api_key_in = "query" },
        "truncate:all_types", { workspace = "FIXTURES" } },
      { "the demo key in the query string and an unknown workspace", "DEMO_KEY",
        { api_key_in = "query" }, "Heartbeat", { workspace = "NO_SUCH_WORKSPACE" } },
      { "the demo key in the query string and a refused connection", "DEMO_KEY",
        { api_key_in = "query", endpoint = closed }, "Heartbeat" },
      { "the demo key as Basic auth and a refused connection", "DEMO_KEY",
        { api_key_in = "basic", endpoint = closed }, "Heartbeat" },
      { "the demo key in the header and a refused connection", "DEMO_KEY",
        { endpoint = closed }, "Heartbeat" },
    }
    for _, case in ipairs(cases) do
      local what, key, options, kql, opts = case[1], case[2], case[3], case[4], case[5]
      it("never shows the API key in an error: " .. what, function()
        local o = { api_key = key }
        for k, v in pairs(options) do o[k] = v end
        if o.endpoint == closed then o.endpoint = closed .. helper.closed_port() end
        local err = failing(helper.client(o), kql, opts)
        assert_no_secret(err, key)
      end)
    end

    it("never shows a wrong token in an error", function()
      local secret = "eyJhbGciOiJSUzI1NiJ9.SECRET-TOKEN.c2lnbmF0dXJl"
      local err = failing(bare_client { token = secret }, "Heartbeat | take 1")
      assert.are.equal(403, err.status)
      assert_no_secret(err, secret)
    end)

    it("never shows a good token in an error", function()
      local err = failing(bare_client { token = "DEMO_TOKEN" }, "completely invalid syntax")
      assert_no_secret(err, "DEMO_TOKEN")
      local err2 = failing(bare_client { token = function() return "DEMO_TOKEN" end },
        "truncate:all_types", { workspace = "FIXTURES" })
      assert_no_secret(err2, "DEMO_TOKEN")
    end)

    it("never shows the key or token in tostring(client)", function()
      assert.is_nil(tostring(helper.client { api_key_in = "query" }):find("DEMO_KEY", 1, true))
      assert.is_nil(tostring(bare_client { token = "DEMO_TOKEN" }):find("DEMO_TOKEN", 1, true))
    end)
  end)
end)
