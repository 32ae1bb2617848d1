-- What client:query puts on the wire, as the local server received it.
local helper = require "helper"
local la = require "loganalytics"

local QUERY_SCOPE = "https://api.loganalytics.io/.default"

-- RFC 4648 base64, written out here so the expected Basic credential is
-- computed independently of the module and of libcurl.
local function base64(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = {}
    for k = 3, 0, -1 do
      local idx = math.floor(n / 2 ^ (6 * k)) % 64  -- (no bit operators before Lua 5.3)
      chars[#chars + 1] = alphabet:sub(idx + 1, idx + 1)
    end
    if not b then chars[3], chars[4] = "=", "=" elseif not c then chars[4] = "=" end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end

-- Runs a query that must succeed and returns the result and what the server saw.
local function sent(client, kql, opts)
  local result, err = client:query(kql, opts)
  assert(result, "query failed: " .. tostring(err))
  return result, helper.last_request()
end

local function keys_of(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return list
end

describe("the request on the wire", function()
  local client

  setup(function()
    client = helper.client()
  end)

  describe("method, path and body", function()
    it("is a POST to /v1/workspaces/<workspace>/query", function()
      local _, req = sent(client, "Heartbeat | take 1")
      assert.are.equal("POST", req.method)
      assert.are.equal("/v1/workspaces/DEMO_WORKSPACE/query", req.path)
    end)

    it("has a JSON body holding only the query when no option is given", function()
      local _, req = sent(client, "Heartbeat | take 1")
      assert.are.same({ "query" }, keys_of(req.json))
      assert.are.equal("Heartbeat | take 1", req.json.query)
      assert.is_nil(req.json.timespan)
      assert.is_nil(req.json.workspaces)
    end)

    it("carries a query with quotes, backslashes and non-ASCII text exactly", function()
      local kql = 'Heartbeat | where Computer == "a\\"b" // caf\195\169 \240\159\152\128\n| take 1'
      local _, req = sent(client, kql)
      assert.are.equal(kql, req.json.query)
    end)

    it("lets the query's workspace option override the client's", function()
      local other = helper.client { workspace = "SOME_OTHER_WORKSPACE" }
      local result, req = sent(other, "Heartbeat | take 2", { workspace = "DEMO_WORKSPACE" })
      assert.are.equal("/v1/workspaces/DEMO_WORKSPACE/query", req.path)
      assert.are.equal(2, #result.tables[1].rows)
    end)

    it("sends a resource-centric query to /v1<resource>/query", function()
      local resource = "/subscriptions/6b4c3a2e-1d0f-4e8a-9b7c-5a4d3c2b1a00/resourceGroups/contoso-prod"
        .. "/providers/Microsoft.Compute/virtualMachines/vm-01"
      local result, req = sent(client, "Heartbeat | take 3", { resource = resource })
      assert.are.equal("POST", req.method)
      assert.are.equal("/v1" .. resource .. "/query", req.path)
      assert.are.equal(3, #result.tables[1].rows)
    end)

    it("sends the workspaces option as a JSON array of strings", function()
      local _, req = sent(client, "Heartbeat | take 1", { workspaces = { "ws-2", "ws-3" } })
      assert.are.same({ "ws-2", "ws-3" }, req.json.workspaces)
      assert.are.same({ "query", "workspaces" }, keys_of(req.json))
    end)

    it("sends content-type application/json", function()
      local _, req = sent(client, "Heartbeat | take 1")
      assert.matches("^application/json", req.headers["content-type"])
    end)

    it("names loganalytics-lua and its version in the user-agent", function()
      local _, req = sent(client, "Heartbeat | take 1")
      local ua = req.headers["user-agent"]
      assert.is_string(ua)
      assert.truthy(ua:find("loganalytics-lua/" .. la._VERSION, 1, true),
        "user-agent was: " .. tostring(ua))
    end)
  end)

  describe("timespan", function()
    local cases = {
      { "an ISO 8601 duration", "PT1H", "PT1H" },
      { "an ISO 8601 day duration", "P1D", "P1D" },
      { "an interval start/end", "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z",
        "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z" },
      { "an interval start/duration", "2024-01-01T00:00:00Z/PT1H", "2024-01-01T00:00:00Z/PT1H" },
      { "a number of seconds", 3600, "PT3600S" },
      { "a fractional number of seconds", 90.5, "PT90.5S" },
      { "{start, finish} in epoch seconds", { start = 1704067200, finish = 1704153600 },
        "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z" },
      { "{start, finish} in epoch seconds with fractions",
        { start = 1704067200.5, finish = 1704067201.25 },
        "2024-01-01T00:00:00.5Z/2024-01-01T00:00:01.25Z" },
      { "{start, finish} in epoch seconds with millisecond fractions",
        { start = 1704067200.123, finish = 1704153600 },
        "2024-01-01T00:00:00.123Z/2024-01-02T00:00:00Z" },
      { "{start, finish} as ISO strings",
        { start = "2024-01-01T00:00:00Z", finish = "2024-01-02T12:30:00Z" },
        "2024-01-01T00:00:00Z/2024-01-02T12:30:00Z" },
      { "{start, duration} with duration in seconds", { start = 1704067200, duration = 7200 },
        "2024-01-01T00:00:00Z/PT7200S" },
      { "{start, duration} with an ISO duration", { start = "2024-01-01T00:00:00Z", duration = "P1D" },
        "2024-01-01T00:00:00Z/P1D" },
      { "{duration, finish}", { duration = 3600, finish = 1704153600 },
        "PT3600S/2024-01-02T00:00:00Z" },
      { "{duration, finish} with an ISO duration and ISO finish",
        { duration = "PT30M", finish = "2024-01-02T00:00:00Z" }, "PT30M/2024-01-02T00:00:00Z" },
    }
    for _, case in ipairs(cases) do
      local what, value, expected = case[1], case[2], case[3]
      it("sends " .. what .. " as " .. expected, function()
        local _, req = sent(client, "Heartbeat | take 1", { timespan = value })
        assert.are.equal(expected, req.json.timespan)
      end)
    end
  end)

  describe("the Prefer header", function()
    it("is absent when no preference is asked for", function()
      local _, req = sent(client, "Heartbeat | take 1")
      assert.is_nil(req.headers.prefer)
    end)

    it("is absent when statistics and render are false", function()
      local _, req = sent(client, "Heartbeat | take 1", { statistics = false, render = false })
      assert.is_nil(req.headers.prefer)
    end)

    it("says wait=600 for server_timeout = 600", function()
      local _, req = sent(client, "Heartbeat | take 1", { server_timeout = 600 })
      assert.are.equal("wait=600", req.headers.prefer)
    end)

    it("says include-statistics=true for statistics = true", function()
      local _, req = sent(client, "Heartbeat | take 1", { statistics = true })
      assert.are.equal("include-statistics=true", req.headers.prefer)
    end)

    it("says include-render=true for render = true", function()
      local _, req = sent(client, "Heartbeat | take 1", { render = true })
      assert.are.equal("include-render=true", req.headers.prefer)
    end)

    it("joins several preferences with commas", function()
      local _, req = sent(client, "Heartbeat | take 1",
        { server_timeout = 30, statistics = true, render = true })
      local prefs = {}
      for item in req.headers.prefer:gmatch("[^,]+") do
        prefs[#prefs + 1] = item:match("^%s*(.-)%s*$")
      end
      table.sort(prefs)
      assert.are.same({ "include-render=true", "include-statistics=true", "wait=30" }, prefs)
    end)
  end)

  describe("statistics and render in the result", function()
    it("gives result.statistics as a decoded table when asked for", function()
      local result = sent(client, "Heartbeat | take 4", { statistics = true })
      assert.is_table(result.statistics)
      assert.is_table(result.statistics.query)
      assert.are.equal(4, result.statistics.query.datasetStatistics[1].tableRowCount)
      assert.is_number(result.statistics.query.executionTime)
    end)

    it("gives result.render as a decoded table when asked for", function()
      local result = sent(client, "Heartbeat | take 4 | render barchart", { render = true })
      assert.is_table(result.render)
      assert.are.equal("barchart", result.render.visualization)
      assert.are.equal(false, result.render.accumulate)
      assert.are.equal(la.null, result.render.title)
    end)

    it("has neither when they are not asked for", function()
      local result = sent(client, "Heartbeat | take 1")
      assert.is_nil(result.statistics)
      assert.is_nil(result.render)
    end)
  end)

  describe("authentication", function()
    it("sends the API key in the x-api-key header by default", function()
      local _, req = sent(client, "Heartbeat | take 1")
      assert.are.equal("DEMO_KEY", req.headers["x-api-key"])
      assert.is_nil(req.headers.authorization)
      assert.is_nil(req.path:find("api_key", 1, true))
    end)

    it("sends the API key in the header for api_key_in = 'header'", function()
      local c = helper.client { api_key_in = "header" }
      local _, req = sent(c, "Heartbeat | take 1")
      assert.are.equal("DEMO_KEY", req.headers["x-api-key"])
    end)

    it("sends the API key as ?api_key= for api_key_in = 'query'", function()
      local c = helper.client { api_key_in = "query" }
      local _, req = sent(c, "Heartbeat | take 1")
      assert.are.equal("/v1/workspaces/DEMO_WORKSPACE/query?api_key=DEMO_KEY", req.path)
      assert.is_nil(req.headers["x-api-key"])
      assert.is_nil(req.headers.authorization)
    end)

    it("sends the API key as the Basic user name for api_key_in = 'basic'", function()
      local c = helper.client { api_key_in = "basic" }
      local _, req = sent(c, "Heartbeat | take 1")
      assert.are.equal("Basic " .. base64("DEMO_KEY:"), req.headers.authorization)
      assert.is_nil(req.headers["x-api-key"])
    end)

    it("sends a token string as a Bearer authorization", function()
      local c = la.new { endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE", token = "DEMO_TOKEN" }
      local _, req = sent(c, "Heartbeat | take 1")
      assert.are.equal("Bearer DEMO_TOKEN", req.headers.authorization)
      assert.is_nil(req.headers["x-api-key"])
    end)

    it("calls a token function with the query API scope and uses its token", function()
      local scopes = {}
      local c = la.new {
        endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE",
        token = function(scope)
          scopes[#scopes + 1] = scope
          return "DEMO_TOKEN", os.time() + 3600
        end,
      }
      local result, req = sent(c, "Heartbeat | take 1")
      assert.are.same({ QUERY_SCOPE }, scopes)
      assert.are.equal("Bearer DEMO_TOKEN", req.headers.authorization)
      assert.are.equal(1, #result.tables[1].rows)
    end)

    it("asks a token function once for several queries while expires_on is in the future", function()
      local calls = 0
      local c = la.new {
        endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE",
        token = function()
          calls = calls + 1
          return "DEMO_TOKEN", os.time() + 3600
        end,
      }
      for _ = 1, 3 do
        local _, req = sent(c, "Heartbeat | take 1")
        assert.are.equal("Bearer DEMO_TOKEN", req.headers.authorization)
      end
      assert.are.equal(1, calls)
    end)

    it("asks a token function for every query when it gives no expires_on", function()
      local calls = 0
      local c = la.new {
        endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE",
        token = function()
          calls = calls + 1
          return "DEMO_TOKEN"
        end,
      }
      for _ = 1, 3 do sent(c, "Heartbeat | take 1") end
      assert.are.equal(3, calls)
    end)
  end)

  describe("the connection", function()
    it("reuses one keep-alive connection for several queries", function()
      local c = helper.client()
      helper.reset()
      -- no helper calls in between: each of those comes on a connection of its own
      for _ = 1, 5 do
        local result, err = c:query("Heartbeat | take 1")
        assert(result, tostring(err))
      end
      local stats = helper.get("/_test/stats")
      assert.are.equal(5, stats.requests)
      -- one connection for the five queries, plus the one this stats request came on
      assert.are.equal(2, stats.connections)
      local log = helper.get("/_test/requests")
      assert.are.equal(5, #log)
      for i = 2, 5 do
        assert.are.equal(log[1].connection, log[i].connection)
      end
    end)

    it("asks for gzip and decodes a gzip-compressed answer", function()
      local result, req = sent(client, "Heartbeat | take 50")
      local accepted = {}
      for item in req.headers["accept-encoding"]:gmatch("[^,]+") do
        accepted[item:match("^%s*([^;%s]+)")] = true
      end
      assert.is_true(accepted.gzip)
      -- the server compressed this answer (it gzips whenever gzip is accepted)
      local rows = result.tables[1].rows
      assert.are.equal(50, #rows)
      assert.are.equal(12, #result.tables[1].columns)
      for _, row in ipairs(rows) do
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%.%d]*Z$", row.TimeGenerated)
        assert.are.equal("Heartbeat", row.Type)
      end
    end)
  end)
end)
