-- Misuse raises, with a message that names the problem.
local helper = require "helper"
local la = require "loganalytics"

-- The message of the error `fn` raises (fails when it does not raise).
local function raised(fn)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error to be raised, but the call succeeded")
  return tostring(err)
end

-- Asserts that `fn` raises a message containing every one of `words` (plain text).
local function assert_raises_naming(fn, ...)
  local message = raised(fn)
  for _, word in ipairs { ... } do
    assert(message:find(word, 1, true), ("message %q does not name %q"):format(message, word))
  end
  return message
end

local function new_with(options)
  return function()
    local o = { endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE" }
    for k, v in pairs(options) do o[k] = v end
    return la.new(o)
  end
end

describe("misuse", function()
  describe("of la.new", function()
    it("raises for an unknown option, naming it", function()
      assert_raises_naming(function() return la.new { bogus = 1 } end, "bogus")
    end)

    it("raises for a non-table argument", function()
      assert_raises_naming(function() return la.new("x") end, "table")
      assert_raises_naming(function() return la.new() end, "table")
    end)

    it("raises for every transport option with a wrong type or value, naming it", function()
      local bad = {
        { max_retries = -1 }, { max_retries = 1.5 }, { max_retries = "3" },
        { retry_delay = "x" }, { retry_delay = -1 }, { retry_max_delay = 0 },
        { timeout = 0 }, { timeout = "10" }, { connect_timeout = -1 }, { stall_timeout = 0 },
        { ca_file = 5 }, { ca_file = "" }, { ca_path = {} }, { verify_tls = "no" },
        { proxy = 1 }, { log = 5 }, { user_agent = "a\nb" }, { cloud = "mars" }, { audience = 1 },
      }
      for _, options in ipairs(bad) do
        local name = next(options)
        assert_raises_naming(new_with(options), name)
      end
    end)

    it("raises for an on_row handler that is not callable, naming it", function()
      local client = helper.client()
      assert_raises_naming(function() client:query("Heartbeat", { on_row = "x" }) end, "on_row")
      assert_raises_naming(function() client:rows("Heartbeat", { on_row = print }) end, "on_row")
    end)

    it("raises for a workspace that is not a string", function()
      assert_raises_naming(new_with { workspace = 5 }, "workspace")
    end)

    it("raises for api_key and token together", function()
      assert_raises_naming(new_with { api_key = "DEMO_KEY", token = "DEMO_TOKEN" }, "api_key", "token")
    end)

    it("raises for an unknown api_key_in", function()
      assert_raises_naming(new_with { api_key = "DEMO_KEY", api_key_in = "cookie" }, "api_key_in")
    end)

    it("raises for a token that is neither a string nor a function", function()
      assert_raises_naming(new_with { token = 42 }, "token")
    end)

    it("raises for a credential without get_token", function()
      assert_raises_naming(new_with { credential = {} }, "credential")
    end)

    it("raises for an endpoint that is not http(s)", function()
      assert_raises_naming(function()
        return la.new { endpoint = "ftp://x", workspace = "W", api_key = "K" }
      end, "endpoint")
    end)

    it("raises for plain http to a host that is not loopback", function()
      assert_raises_naming(function()
        return la.new { endpoint = "http://example.com", workspace = "W", api_key = "K" }
      end, "endpoint")
    end)

    it("accepts plain http to a host that is not loopback with allow_http = true", function()
      local ok, client = pcall(la.new, {
        endpoint = "http://example.com", workspace = "W", api_key = "K", allow_http = true,
      })
      assert(ok, "la.new raised: " .. tostring(client))
      assert.is_not_nil(client)
    end)

    it("accepts plain http to 127.0.0.1 without allow_http", function()
      local ok, client = pcall(la.new, { endpoint = "http://127.0.0.1:1", workspace = "W", api_key = "K" })
      assert(ok, "la.new raised: " .. tostring(client))
    end)
  end)

  describe("of client:query", function()
    local client
    setup(function() client = helper.client() end)

    local function query_with(kql, opts)
      return function() return client:query(kql, opts) end
    end

    it("raises for a query that is not a string", function()
      assert_raises_naming(query_with(42), "query", "string")
    end)

    it("raises for an empty query", function()
      assert_raises_naming(query_with(""), "empty")
    end)

    it("raises for an unknown option, naming it", function()
      assert_raises_naming(query_with("Heartbeat", { bogus = 1 }), "bogus")
    end)

    local bad_timespans = {
      { "a word", "yesterday" },
      { "a bare P", "P" },
      { "a table with only a start", { start = 1 } },
      { "a table with start, finish and duration", { start = 1, finish = 2, duration = 3 } },
      { "a negative number", -5 },
      { "zero seconds", 0 },
      { "a boolean", true },
    }
    for _, case in ipairs(bad_timespans) do
      it("raises for a timespan that is " .. case[1], function()
        assert_raises_naming(query_with("Heartbeat", { timespan = case[2] }), "timespan")
      end)
    end

    it("names the bad timespan text in the message", function()
      assert_raises_naming(query_with("Heartbeat", { timespan = "yesterday" }), "yesterday")
    end)

    it("raises for workspaces that is a string", function()
      assert_raises_naming(query_with("Heartbeat", { workspaces = "ws" }), "workspaces")
    end)

    it("raises for workspaces holding a number", function()
      assert_raises_naming(query_with("Heartbeat", { workspaces = { 1 } }), "workspaces")
    end)

    it("raises for a server_timeout given as a string", function()
      assert_raises_naming(query_with("Heartbeat", { server_timeout = "600" }), "server_timeout")
    end)

    it("raises for a server_timeout of 0", function()
      assert_raises_naming(query_with("Heartbeat", { server_timeout = 0 }), "server_timeout")
    end)

    it("raises for statistics that is not a boolean", function()
      assert_raises_naming(query_with("Heartbeat", { statistics = "yes" }), "statistics")
    end)

    it("raises for render that is not a boolean", function()
      assert_raises_naming(query_with("Heartbeat", { render = 1 }), "render")
    end)

    it("raises for a resource without a leading slash", function()
      assert_raises_naming(query_with("Heartbeat", { resource = "subscriptions/x" }), "resource")
    end)

    it("raises for workspace and resource together", function()
      assert_raises_naming(query_with("Heartbeat", {
        workspace = "DEMO_WORKSPACE", resource = "/subscriptions/x/resourceGroups/g/providers/p",
      }), "workspace", "resource")
    end)

    it("raises when neither the client nor the query names a workspace or resource", function()
      local bare = la.new { endpoint = helper.endpoint(), api_key = "DEMO_KEY" }
      assert_raises_naming(function() return bare:query("Heartbeat") end, "workspace")
    end)

    it("raises before anything is sent", function()
      helper.reset()
      pcall(client.query, client, "Heartbeat", { timespan = "yesterday" })
      pcall(client.query, client, "Heartbeat", { bogus = 1 })
      pcall(client.query, client, 42)
      assert.are.equal(0, helper.get("/_test/stats").requests)
    end)
  end)
end)
