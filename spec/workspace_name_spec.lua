-- Workspaces by name ({ subscription, resource_group, name }): resolved once
-- per client to their customer id by Resource Manager's workspace GET
-- (api-version 2022-10-01, a management token), then queried over the v1
-- API; never Resource Manager's /api/query route. Against the local server,
-- which counts the lookups (/_test/stats workspace_lookups) and logs every
-- request (/_test/requests).
local helper = require "helper"
local la = require "loganalytics"
local core = require "loganalytics.core"

-- identity.py's DEMO_CUSTOMER_ID: demo-workspace's customer id
local CUSTOMER_ID = "8a1d5c2e-4b7f-4e0a-9c3d-2f6b1e9a7d40"
local MANAGEMENT_SCOPE = "https://management.azure.com/.default"
local QUERY_SCOPE = "https://api.loganalytics.io/.default"
-- pcall yields across on Lua 5.2+ and LuaJIT: the coroutine cases need it
local PCALL_YIELDS = _VERSION ~= "Lua 5.1" or type(jit) == "table"

local function named(name, subscription, group)
  return { subscription = subscription or "sub-1", resource_group = group or "rg-1",
           name = name or "demo-workspace" }
end

local function credential()
  return la.credentials.client_secret { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
    client_secret = "TEST_SECRET", authority_host = helper.endpoint() }
end

local function client(options, io)
  local o = { endpoint = helper.endpoint(), arm_endpoint = helper.endpoint(),
              workspace = named(), credential = credential(), max_retries = 0 }
  for k, v in pairs(options or {}) do o[k] = v end
  if io then return la._new_with_io(o, io) end
  return la.new(o)
end

local function lookups() return helper.get("/_test/stats").workspace_lookups end

-- The paths the server saw (query API and Resource Manager), in order.
local function paths()
  local out = {}
  for _, r in ipairs(helper.get("/_test/requests")) do out[#out + 1] = r.method .. " " .. r.path end
  return out
end

local LOOKUP_PATH = "GET /subscriptions/sub-1/resourceGroups/rg-1/providers/"
  .. "Microsoft.OperationalInsights/workspaces/demo-workspace?api-version=2022-10-01"
local QUERY_PATH = "POST /v1/workspaces/" .. CUSTOMER_ID .. "/query"

-- An io layer as loganalytics.resty's (per_call, a handle per transfer),
-- on libcurl handles whose waits yield: coroutines driven by run_all
-- interleave in every transfer and every sleep, as on nginx's event loop.
local function yielding_io()
  local function new_http()
    local http = core.new()
    local h = {}
    function h.perform(_, req)
      http:start(req)
      while true do
        local response = http:step(2)
        if response then return response end
        coroutine.yield()
      end
    end
    function h.start(_, req) return http:start(req) end
    function h.step(_, ms) return http:step(ms) end
    function h.cancel() return http:cancel() end
    function h.close() return http:close() end
    return h
  end
  local function sleep(seconds)
    local deadline = core.now() + seconds
    repeat coroutine.yield() until core.now() >= deadline
  end
  return { new_http = new_http, sleep = sleep, per_call = true }
end

-- Runs the functions as coroutines, round robin, to the end of each; their results.
local function run_all(fns)
  local cos, results = {}, {}
  for i, fn in ipairs(fns) do cos[i] = coroutine.create(fn) end
  local left = #cos
  while left > 0 do
    left = 0
    for i, co in ipairs(cos) do
      if coroutine.status(co) ~= "dead" then
        local ok, a, b = coroutine.resume(co)
        assert(ok, tostring(a))
        if coroutine.status(co) == "dead" then results[i] = { a, b } else left = left + 1 end
      end
    end
  end
  return results
end

describe("a workspace given by name", function()
  before_each(function() helper.reset() end)

  it("is looked up once per client: ten queries, one management request, each query to /v1/workspaces/{customerId}/query", function()
    local c = client()
    for i = 1, 10 do
      local result, err = c:query("Heartbeat | take 1")
      assert(result, ("query %d: %s"):format(i, tostring(err)))
      assert.equals(1, #result.tables[1].rows)
    end
    assert.equals(1, lookups())
    local seen = paths()
    assert.equals(11, #seen)
    assert.equals(LOOKUP_PATH, seen[1])
    for i = 2, 11 do assert.equals(QUERY_PATH, seen[i]) end
  end)

  it("asks the management scope for the lookup and the Log Analytics scope for the query", function()
    local asked = {}
    local inner = credential()
    local recording = {
      get_token = function(_, scope, transport)
        local token, expires_on = inner:get_token(scope, transport)
        asked[#asked + 1] = { scope = scope, token = token }
        return token, expires_on
      end,
    }
    local c = client { credential = recording }
    assert(c:query("Heartbeat | take 1"))
    local by_scope = {}
    for _, a in ipairs(asked) do by_scope[a.scope] = a.token end
    assert.is_string(by_scope[MANAGEMENT_SCOPE])
    assert.is_string(by_scope[QUERY_SCOPE])
    local requests = helper.get("/_test/requests")
    assert.equals(2, #requests)
    assert.equals("Bearer " .. by_scope[MANAGEMENT_SCOPE], requests[1].headers.authorization)
    assert.equals("Bearer " .. by_scope[QUERY_SCOPE], requests[2].headers.authorization)
    -- a token for the query API does not open Resource Manager: 401, secret kept out
    local wrong = la.new { endpoint = helper.endpoint(), arm_endpoint = helper.endpoint(),
                           workspace = named(), token = "DEMO_TOKEN", max_retries = 0 }
    local result, err = wrong:query("Heartbeat | take 1")
    assert.is_nil(result)
    assert.equals("auth", err.kind)
    assert.equals(401, err.status)
    assert.matches("demo-workspace", err.message, 1, true)
    assert.not_matches("DEMO_TOKEN", tostring(err), 1, true)
  end)

  it("is looked up once for ten queries in coroutines at once", function()
    if not PCALL_YIELDS then pending("Lua 5.1's pcall cannot yield") return end
    local c = client(nil, yielding_io())
    local fns = {}
    for i = 1, 10 do fns[i] = function() return c:query("Heartbeat | take 1") end end
    for i, r in ipairs(run_all(fns)) do assert(r[1], ("query %d: %s"):format(i, tostring(r[2]))) end
    assert.equals(1, lookups())
    local seen = paths()
    assert.equals(LOOKUP_PATH, seen[1])
    for i = 2, 11 do assert.equals(QUERY_PATH, seen[i]) end
  end)

  it("is looked up once for a query_many of ten", function()
    local list = {}
    for i = 1, 10 do list[i] = { "Heartbeat | take 1" } end
    local answers = client():query_many(list)
    for i, a in ipairs(answers) do assert(a.result, ("query %d: %s"):format(i, tostring(a.err))) end
    assert.equals(1, lookups())
    local seen = paths()
    assert.equals(LOOKUP_PATH, seen[1])
    for i = 2, 11 do assert.equals(QUERY_PATH, seen[i]) end
  end)

  it("not found: an error naming the workspace; not kept, the next query asks again", function()
    local c = client { workspace = named("no-such-workspace") }
    for round = 1, 2 do
      local result, err = c:query("Heartbeat | take 1")
      assert.is_nil(result)
      assert.equals("service", err.kind)
      assert.equals(404, err.status)
      assert.equals("ResourceNotFound", err.code)
      assert.matches("workspace 'no-such-workspace' (subscription 'sub-1', resource group 'rg-1') was not found",
        tostring(err), 1, true)
      assert.equals(round, lookups())
    end
    assert.equals(0, #helper.get("/_test/requests") - 2)  -- two lookups, no query sent
  end)

  it("no access (403): an error naming the workspace", function()
    local result, err = client { workspace = named("TEST_FORBIDDEN_WORKSPACE") }:query("Heartbeat")
    assert.is_nil(result)
    assert.equals("auth", err.kind)
    assert.equals(403, err.status)
    assert.equals("AuthorizationFailed", err.code)
    assert.matches("no access to workspace 'TEST_FORBIDDEN_WORKSPACE' (subscription 'sub-1', "
      .. "resource group 'rg-1')", tostring(err), 1, true)
  end)

  it("an answer without a valid properties.customerId is a protocol error, not a query", function()
    for _, name in ipairs { "TEST_NO_CUSTOMER_ID", "TEST_BAD_CUSTOMER_ID" } do
      helper.reset()
      local result, err = client { workspace = named(name) }:query("Heartbeat")
      assert.is_nil(result, name)
      assert.equals("protocol", err.kind, name)
      assert.matches("properties.customerId", err.message, 1, true)
      assert.matches(name, err.message, 1, true)
      assert.equals(1, #helper.get("/_test/requests"), name)  -- the lookup alone
    end
  end)

  it("a failed lookup is shared by the queries waiting on it, then asked again", function()
    if not PCALL_YIELDS then pending("Lua 5.1's pcall cannot yield") return end
    local c = client({ workspace = named("no-such-workspace") }, yielding_io())
    local fns = {}
    for i = 1, 10 do fns[i] = function() return c:query("Heartbeat | take 1") end end
    for i, r in ipairs(run_all(fns)) do
      assert.is_nil(r[1], "query " .. i)
      assert.equals(404, r[2].status)
      assert.matches("'no-such-workspace'", r[2].message, 1, true)
    end
    assert.equals(1, lookups())
    local again = run_all { function() return c:query("Heartbeat | take 1") end }
    assert.equals(404, again[1][2].status)
    assert.equals(2, lookups())
  end)

  it("a failed lookup is each query's error in a query_many, one request, then asked again", function()
    local c = client { workspace = named("no-such-workspace") }
    local list = {}
    for i = 1, 10 do list[i] = { "Heartbeat | take 1" } end
    list[11] = { "Heartbeat | take 1", { workspace = "DEMO_WORKSPACE" } }
    local answers = c:query_many(list)
    for i = 1, 10 do
      assert.is_nil(answers[i].result, "query_many " .. i)
      assert.equals(404, answers[i].err.status)
      assert.matches("'no-such-workspace'", answers[i].err.message, 1, true)
    end
    assert(answers[11].result, tostring(answers[11].err))
    assert.equals(1, lookups())
    assert.same({ "GET /subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.OperationalInsights/"
      .. "workspaces/no-such-workspace?api-version=2022-10-01",
      "POST /v1/workspaces/DEMO_WORKSPACE/query" }, paths())
    assert.is_nil((c:query("Heartbeat | take 1")))
    assert.equals(2, lookups())
  end)

  it("is cached per client and per (subscription, resource group, name)", function()
    local a, b = client(), client()
    assert(a:query("Heartbeat | take 1"))
    assert(b:query("Heartbeat | take 1"))
    assert.equals(2, lookups())
    assert(a:query("Heartbeat | take 1", { workspace = named("demo-workspace", "sub-2") }))
    assert(a:query("Heartbeat | take 1", { workspace = named("demo-workspace", "sub-1", "rg-2") }))
    assert.equals(4, lookups())
    assert(a:query("Heartbeat | take 1", { workspace = named("demo-workspace", "sub-2") }))
    assert(a:query("Heartbeat | take 1"))
    assert.equals(4, lookups())
  end)

  it("keeps every field percent-encoded in the lookup", function()
    local c = client { workspace = named("demo-workspace", "sub 1?x=y#", "rg(1)%2e") }
    assert(c:query("Heartbeat | take 1"))
    assert.equals("GET /subscriptions/sub%201%3Fx%3Dy%23/resourceGroups/rg%281%29%252e/providers/"
      .. "Microsoft.OperationalInsights/workspaces/demo-workspace?api-version=2022-10-01", paths()[1])
    helper.reset()
    local result, err = client { workspace = named("a?b&api-version=1#..%2f") }:query("Heartbeat")
    assert.is_nil(result)
    assert.equals(404, err.status)
    assert.matches("workspace 'a?b&api-version=1#..%2f'", err.message, 1, true)
    assert.equals("GET /subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.OperationalInsights/"
      .. "workspaces/a%3Fb%26api-version%3D1%23..%252f?api-version=2022-10-01", paths()[1])
  end)

  it("serves search, batch and export through the resolved id", function()
    local c = client()
    assert(c:search("Heartbeat | take 1", { timespan = "P1D" }))
    local answers = assert(c:batch { { "Heartbeat | take 1" }, { "Heartbeat | take 2" } })
    for i, a in ipairs(answers) do assert(a.result, ("batch %d: %s"):format(i, tostring(a.err))) end
    local summary, err = c:export("Heartbeat", { concurrency = 1, slice = 43200,
      timespan = "2025-12-31T00:00:00Z/2026-01-01T00:00:00Z", on_row = function() end })
    assert(summary, tostring(err))
    assert.equals(1, lookups())
    local requests = helper.get("/_test/requests")
    assert.equals("POST /v1/workspaces/" .. CUSTOMER_ID .. "/search", requests[2].method .. " " .. requests[2].path)
    assert.equals("/v1/$batch", requests[3].path)
    for _, sub in ipairs(core.decode_json(requests[3].body).requests) do
      assert.equals(CUSTOMER_ID, sub.workspace)
    end
    for i = 4, #requests do assert.equals(QUERY_PATH, requests[i].method .. " " .. requests[i].path) end
    -- a failed lookup is each query's error in a batch, the others still run
    helper.reset()
    answers = assert(c:batch { { "Heartbeat | take 1" },
      { "Heartbeat | take 1", { workspace = named("no-such-workspace") } },
      { "Heartbeat | take 1", { workspace = "DEMO_WORKSPACE" } } })
    assert(answers[1].result, tostring(answers[1].err))
    assert.equals(404, answers[2].err.status)
    assert(answers[3].result, tostring(answers[3].err))
  end)

  it("follows the client's retry policy: a throttled lookup is tried again", function()
    helper.configure_server('{"throttle_next": 1, "retry_after": 0}')
    local logged = {}
    local c = client { max_retries = 1, retry_delay = 0.01,
                       log = function(level, message) logged[#logged + 1] = level .. " " .. message end }
    local result, err = c:query("Heartbeat | take 1")
    assert(result, tostring(err))
    assert.equals(1, helper.get("/_test/stats").throttled)  -- (refused before it is answered)
    assert.same({ LOOKUP_PATH, LOOKUP_PATH, QUERY_PATH }, paths())
    local text = table.concat(logged, "\n")
    assert.matches("warn retry 1 of 1 in [%d.]+ s after HTTP 429", text)
    assert.matches("info GET http://127.0.0.1:%d+/subscriptions/sub%-1/", text)
  end)

  it("the core client takes method GET (no body) or POST, nothing else", function()
    local http = core.new()
    local url = helper.endpoint() .. "/v1/workspaces/DEMO_WORKSPACE/query"
    assert.has_error(function() http:perform { url = url, method = "PUT" } end)
    assert.has_error(function() http:perform { url = url, method = "GET", body = "{}" } end)
    http:close()
  end)

  it("the local server's workspace GET answers Resource Manager's shape", function()
    local token = assert(credential():get_token(MANAGEMENT_SCOPE))
    local http = core.new()
    local response = http:perform { url = helper.endpoint() .. "/" .. LOOKUP_PATH:match("^GET /(.*)$"),
      method = "GET", raw = true, headers = { "Authorization: Bearer " .. token } }
    http:close()
    assert.equals(200, response.status)
    local got = core.decode_json(response.body)
    local example = core.decode_json(helper.read_file("spec/fixtures/wire/WorkspacesSubscriptionList.json"))
      .responses["200"].body.value[1]
    local function keys(t)
      local out = {}
      for k in pairs(t) do out[#out + 1] = k end
      table.sort(out)
      return out
    end
    assert.same(keys(example), keys(got))
    assert.same(keys(example.properties), keys(got.properties))
    assert.equals(CUSTOMER_ID, got.properties.customerId)
    assert.equals("Microsoft.OperationalInsights/workspaces", got.type)
  end)
end)
