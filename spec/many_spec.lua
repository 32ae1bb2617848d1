-- client:query_many, client:batch and client:search against the local
-- server, over real sockets: the server counts what is in flight, throttles
-- beyond its concurrency limit, answers $batch out of order (some bodies as
-- JSON strings) and serves /search.
local helper = require "helper"

-- misuse: raises the module's one-line message (not any error)
local function refused(f)
  local ok, err = pcall(f)
  assert(not ok, "did not raise")
  assert(type(err) == "string" and err:find("^loganalytics: "), "raised " .. tostring(err))
end
local core = require "loganalytics.core"

local function client(options)
  local o = { max_retries = 5 }
  for k, v in pairs(options or {}) do o[k] = v end
  return helper.client(o)
end

local function first_cell(result) return result.tables[1].rows[1][1] end

describe("client:query_many", function()
  before_each(function() helper.reset() end)

  it("runs 20 slow queries 5 at a time, never more in flight, in about a quarter of the serial time", function()
    local c = client { workspace = "FAULTS" }
    local list = {}
    for i = 1, 20 do list[i] = { "sleep:500" } end
    local ended = {}
    local t0 = core.now()
    local answers = c:query_many(list, { concurrency = 5, on_result = function(i, r, e)
      ended[#ended + 1] = i
      assert(r, tostring(e))
    end })
    local seconds = core.now() - t0
    assert.are.equal(20, #answers)
    assert.are.equal(20, #ended)
    for i, a in ipairs(answers) do
      assert(a.result, "query " .. i .. ": " .. tostring(a.err))
      assert.are.equal("success", a.result.status)
      assert.are.equal(3, #a.result.tables[1].rows)
    end
    local stats = helper.get("/_test/stats")
    assert(stats.max_in_flight <= 5, "in flight at once: " .. stats.max_in_flight)
    assert(stats.max_in_flight >= 4, "in flight at once: " .. stats.max_in_flight)
    -- serial: 20 x 0.5 s; five at a time: 4 rounds of 0.5 s, a fifth of it, plus overheads
    assert(seconds < 0.3 * 20 * 0.5, ("took %.2f s"):format(seconds))
    c:close()
  end)

  it("gives results in the order given, each query with its own options", function()
    local c = client { workspace = "GENERATED" }
    local list = {}
    for i = 1, 7 do list[i] = { kql = "Events | take " .. i, timespan = "PT1H" } end
    list[8] = { "Events | where nonsense" }
    local answers = c:query_many(list, { concurrency = 3 })
    for i = 1, 7 do
      assert(answers[i].result, tostring(answers[i].err))
      assert.are.equal(i, #answers[i].result.tables[1].rows)
    end
    assert.is_nil(answers[8].result)
    assert.are.equal("service", answers[8].err.kind)
    assert.are.equal(400, answers[8].err.status)
    c:close()
  end)

  it("survives a 429 storm: every query succeeds, and the whole group holds back", function()
    helper.configure_server('{"concurrency_limit":2,"retry_after":1}')
    local c = client { workspace = "FAULTS", max_retries = 10 }
    local list = {}
    for i = 1, 12 do list[i] = { "sleep:200" } end
    local answers = c:query_many(list, { concurrency = 5 })
    for i, a in ipairs(answers) do assert(a.result, "query " .. i .. ": " .. tostring(a.err)) end
    local stats = helper.get("/_test/stats")
    assert(stats.throttled >= 1, "the storm did not happen")
    -- back-pressure: after a 429 no new query starts until its Retry-After
    -- has passed, and no more run at once than the server admitted (without
    -- it: 3 refusals a second, about 18 over the run)
    assert(stats.throttled <= 8, "throttled " .. stats.throttled .. " times")
    c:close()
  end)

  it("honours throttle_next's Retry-After before starting anything else", function()
    helper.configure_server('{"throttle_next":1,"retry_after":1}')
    local c = client { workspace = "FAULTS" }
    local t0 = core.now()
    local answers = c:query_many({ { "sleep:0" }, { "sleep:0" }, { "sleep:0" } }, { concurrency = 1 })
    for _, a in ipairs(answers) do assert(a.result, tostring(a.err)) end
    assert(core.now() - t0 >= 0.9, "no wait after the 429")
    c:close()
  end)

  it("uses one token for all, and renews it once for all after a 401", function()
    helper.configure_identity('{"reset": true}')
    local credential = require("loganalytics").credentials.client_secret { tenant = "TEST_TENANT",
      client_id = "TEST_CLIENT", client_secret = "TEST_SECRET", authority_host = helper.endpoint() }
    local c = require("loganalytics").new { endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE",
                                            credential = credential }
    local list = {}
    for i = 1, 10 do list[i] = { "Heartbeat | take 1" } end
    for _, a in ipairs(c:query_many(list)) do assert(a.result, tostring(a.err)) end
    assert.are.equal(1, helper.identity().token_requests)
    helper.revoke_tokens()  -- every query of the next run gets a 401 first
    for _, a in ipairs(c:query_many(list)) do assert(a.result, tostring(a.err)) end
    assert.are.equal(2, helper.identity().token_requests)
    c:close()
  end)

  it("raises on misuse, and is the client's transfer (busy from on_result)", function()
    local c = client()
    refused(function() c:query_many("Heartbeat") end)
    refused(function() c:query_many({ { 42 } }) end)
    refused(function() c:query_many({ { "Heartbeat" } }, { concurrency = 0 }) end)
    refused(function() c:query_many({ { "Heartbeat" } }, { bogus = 1 }) end)
    local ok, err = pcall(c.query_many, c, { { "Heartbeat | take 1" } }, { on_result = function()
      c:query("Heartbeat | take 1")
    end })
    assert.is_false(ok)
    assert.are.equal("busy", err.kind)
    -- and the client works afterwards
    assert(c:query("Heartbeat | take 1"))
    c:close()
  end)
end)

describe("client:batch", function()
  before_each(function() helper.reset() end)

  it("sends 25 requests in batches of 10, answered out of order, and gives them back in order", function()
    helper.configure_server('{"batch_order":"shuffled","batch_string_every":3}')
    local c = client { workspace = "GENERATED" }
    local list = {}
    for i = 1, 25 do
      list[i] = { kql = "Events | take " .. i, timespan = "2025-12-0" .. (1 + i % 9) .. "T00:00:00Z/P1D" }
    end
    local answers = assert(c:batch(list))
    assert.are.equal(25, #answers)
    for i, a in ipairs(answers) do
      assert(a.result, "request " .. i .. ": " .. tostring(a.err))
      local want = assert(c:query(list[i].kql, { timespan = list[i].timespan }))
      helper.assert_same_rows(want.tables[1].rows, a.result.tables[1].rows, "request " .. i)
      assert.are.same(want.tables[1].columns, a.result.tables[1].columns)
    end
    assert.are.equal(3, helper.get("/_test/stats").requests - 25)  -- 3 batches, then 25 queries
    c:close()
  end)

  it("gives a failing request its own error, the others their results", function()
    local c = client()
    local answers = assert(c:batch { { "Heartbeat | take 2" }, { "Heartbeat | where" }, { "Heartbeat | take 1" } })
    assert.are.equal(2, #answers[1].result.tables[1].rows)
    assert.is_nil(answers[2].result)
    assert.are.equal("service", answers[2].err.kind)
    assert.are.equal(400, answers[2].err.status)
    assert.are.equal(1, #answers[3].result.tables[1].rows)
    c:close()
  end)
end)

describe("client:search", function()
  before_each(function() helper.reset() end)

  it("round-trips over /search, as query does", function()
    local c = client { workspace = "GENERATED" }
    local r = assert(c:search("Events | take 5", { timespan = "2025-12-01T00:00:00Z/PT1H" }))
    assert.are.equal("success", r.status)
    assert.are.equal(5, #r.tables[1].rows)
    assert.are.equal(1, first_cell(r))
    assert.matches("/v1/workspaces/GENERATED/search$", helper.last_request().path)
    local n = 0
    assert(c:search("Events | take 5", { timespan = "2025-12-01T00:00:00Z/PT1H", on_row = function() n = n + 1 end }))
    assert.are.equal(5, n)
    c:close()
  end)

  it("raises without a timespan", function()
    local c = client()
    local ok, err = pcall(c.search, c, "Heartbeat")
    assert.is_false(ok)
    assert.matches("timespan", tostring(err))
    c:close()
  end)
end)
