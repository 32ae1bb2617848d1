-- Groups (core.group): many transfers on one libcurl multi handle, driven
-- by g:wait and collected by each client's step; the body_file request
-- option and core.decoder{count_only = true}; core.batch_answers on the
-- local server's $batch answer and on hostile text. Real HTTP against the
-- local server (spec/helper.lua).
local helper = require "helper"
local core = require "loganalytics.core"
-- the body written to a file: large in make test, smaller in the repeat
-- runs (LA_REPEAT_RUN=1: valgrind, ASan, other runtimes)
local BIG_ROWS = os.getenv("LA_REPEAT_RUN") and "rows:5000" or "rows:50000"

local function request(workspace, kql, extra)
  local r = {
    url = helper.endpoint() .. "/v1/workspaces/" .. workspace .. "/query",
    headers = { "X-Api-Key: DEMO_KEY", "Content-Type: application/json" },
    body = core.query_body(kql),
    timeout = 30,
  }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

local function faults(kql, extra)
  return request("FAULTS", kql, extra)
end

-- Waits on g until every client of list has its response (or 20 s pass):
-- { [client] = response }.
local function collect(g, list)
  local responses, left = {}, #list
  local deadline = core.now() + 20
  while left > 0 do
    assert(core.now() < deadline, "the group's transfers did not finish in 20 s")
    for _, c in ipairs(g:wait(1000)) do
      assert.is_nil(responses[c], "a client was returned twice by g:wait")
      local response = c:step(0)
      assert.is_table(response, "a finished client's step gave no response")
      responses[c] = response
      left = left - 1
    end
  end
  return responses
end

local function plain_result(req)
  local response = core.new():perform(req)
  assert.equals(200, response.status)
  return response.result
end

describe("core.group", function()
  before_each(function() helper.reset() end)

  it("runs 10 transfers at once on one multi handle, with the results of a plain client", function()
    local g = core.group { max_connections = 10 }
    local clients = {}
    local started = core.now()
    for i = 1, 10 do
      clients[i] = core.new(g)
      clients[i]:start(faults("sleep:500"))
    end
    local responses = collect(g, clients)
    local took = core.now() - started
    assert.is_true(took < 1.5, ("10 transfers of 0.5 s took %.2f s"):format(took))
    assert.equals(10, helper.get("/_test/stats").max_in_flight)
    local want = plain_result(faults("sleep:0"))
    for i = 1, 10 do
      assert.equals(200, responses[clients[i]].status)
      assert.same(want.tables, responses[clients[i]].result.tables)
    end
    g:close()
  end)

  it("keeps to max_connections: 6 transfers, 2 connections, at most 2 in flight", function()
    local g = core.group { max_connections = 2 }
    local clients = {}
    for i = 1, 6 do
      clients[i] = core.new(g)
      clients[i]:start(faults("sleep:200"))
    end
    local responses = collect(g, clients)
    for i = 1, 6 do assert.equals(200, responses[clients[i]].status) end
    local stats = helper.get("/_test/stats")
    assert.is_true(stats.max_in_flight <= 2, "in flight at once: " .. stats.max_in_flight)
    -- (the request for the stats came on a connection of its own)
    assert.is_true(stats.connections - 1 <= 2, "connections: " .. stats.connections - 1)
  end)

  it("reuses its connections: 20 batches of 4 open at most 4", function()
    local g = core.group { max_connections = 4 }
    local clients = {}
    for i = 1, 4 do clients[i] = core.new(g) end
    for _ = 1, 20 do
      for i = 1, 4 do clients[i]:start(faults("sleep:20")) end
      local responses = collect(g, clients)
      for i = 1, 4 do assert.equals(200, responses[clients[i]].status) end
    end
    local stats = helper.get("/_test/stats")
    assert.equals(80, stats.requests)
    assert.is_true(stats.connections - 1 <= 4, "connections opened: " .. stats.connections - 1)
  end)

  it("streams every row of two transfers to their own on_row, in order", function()
    local g = core.group {}
    local n = os.getenv("LA_REPEAT_RUN") and 3000 or 20000  -- (fewer under valgrind)
    local seen = { {}, {} }
    local clients = {}
    for k = 1, 2 do
      local ids = seen[k]
      clients[k] = core.new(g)
      clients[k]:start(faults("rows:" .. n .. ":" .. k, {
        on_row = function(row) ids[#ids + 1] = row.Id end,
      }))
    end
    local responses = collect(g, clients)
    for k = 1, 2 do
      assert.equals(200, responses[clients[k]].status)
      assert.equals(n, #seen[k])
      for i = 1, n do
        if seen[k][i] ~= i then error(("transfer %d: row %d has Id %s"):format(k, i, tostring(seen[k][i]))) end
      end
    end
  end)

  it("re-raises an on_row error in that client's step; the others go on", function()
    local g = core.group {}
    local bad, good = core.new(g), core.new(g)
    bad:start(faults("rows:5000", { on_row = function(row)
      if row.Id == 100 then error("handler failed at 100") end
    end }))
    local rows = 0
    good:start(faults("rows:5000", { on_row = function() rows = rows + 1 end }))
    local raised, response
    local deadline = core.now() + 20
    while (raised == nil or response == nil) and core.now() < deadline do
      for _, c in ipairs(g:wait(1000)) do
        if c == bad then
          local ok, err = pcall(c.step, c, 0)
          assert.is_false(ok)
          raised = tostring(err)
        else
          response = c:step(0)
        end
      end
    end
    assert.truthy(raised and raised:find("handler failed at 100", 1, true), raised)
    assert.equals(200, response.status)
    assert.equals(5000, rows)
    -- the failed client is free again
    bad:start(faults("sleep:0"))
    assert.equals(200, collect(g, { bad })[bad].status)
  end)

  it("cancels one transfer; the others finish", function()
    local g = core.group {}
    local a, b = core.new(g), core.new(g)
    a:start(faults("sleep:300"))
    b:start(faults("sleep:300"))
    g:wait(50)
    a:cancel()
    assert.has_error(function() a:step(0) end, "no transfer under way")
    local responses = collect(g, { b })
    assert.equals(200, responses[b].status)
    assert.same({}, g:wait(0))  -- the cancelled one is never returned
  end)

  it("closing the group cancels its transfers; their clients tell so and start nothing more", function()
    local g = core.group {}
    local a, b = core.new(g), core.new(g)
    a:start(faults("sleep:2000"))
    b:start(faults("sleep:2000"))
    g:wait(100)
    local started = core.now()
    g:close()
    g:close()  -- idempotent
    assert.is_true(core.now() - started < 0.5)
    for _, c in ipairs { a, b } do
      local response = c:step(0)
      assert.is_table(response)
      assert.equals("cancelled", response.transport.kind)
      assert.truthy(response.transport.message:find("group was closed", 1, true))
    end
    assert.has_error(function() a:start(faults("sleep:0")) end, "the client's group is closed")
    assert.has_error(function() g:wait(0) end, "the group is closed")
    assert.has_error(function() core.new(g) end)
    a:close()
  end)

  it("times each transfer out on its own, not counting its wait for a connection", function()
    local g = core.group { max_connections = 1 }
    local slow, queued = core.new(g), {}
    slow:start(faults("sleep:3000", { timeout = 0.5 }))
    local started = core.now()
    local finished = {}
    repeat
      for _, c in ipairs(g:wait(1000)) do finished[#finished + 1] = c end
    until #finished > 0 or core.now() - started > 5
    assert.same({ slow }, finished)
    local response = slow:step(0)
    assert.equals("timeout", response.transport.kind)
    assert.is_true(core.now() - started < 1, "timed out after " .. (core.now() - started))
    -- three of 0.6 s on one connection, 1 s each: the last waits 1.2 s in the queue
    for i = 1, 3 do
      queued[i] = core.new(g)
      queued[i]:start(faults("sleep:600", { timeout = 1 }))
    end
    local responses = collect(g, queued)
    for i = 1, 3 do
      assert.equals(200, responses[queued[i]].status, responses[queued[i]].transport and responses[queued[i]].transport.message)
    end
  end)

  it("never waits longer than asked", function()
    local g = core.group {}
    local c = core.new(g)
    c:start(faults("sleep:1500"))
    for _, ms in ipairs { 0, 10, 200 } do
      local started = core.now()
      assert.same({}, g:wait(ms))
      local took = core.now() - started
      assert.is_true(took < ms / 1000 + 0.1, ("wait(%d) took %.3f s"):format(ms, took))
    end
    local started = core.now()
    assert.is_nil(c:step(0))
    assert.is_true(core.now() - started < 0.1)
    c:cancel()
  end)

  it("refuses to be driven from inside one of its transfers' on_row", function()
    local g = core.group {}
    local a, b = core.new(g), core.new(g)
    local errors = {}
    a:start(faults("rows:10", { on_row = function()
      for name, f in pairs {
        wait = function() g:wait(0) end, step = function() b:step(0) end,
        cancel = function() b:cancel() end, close = function() g:close() end,
        start = function() b:start(faults("sleep:0")) end,
      } do
        local ok, err = pcall(f)
        if not ok then errors[name] = tostring(err) end
      end
    end }))
    b:start(faults("sleep:100"))
    local responses = collect(g, { a, b })
    assert.equals(200, responses[a].status)
    assert.equals(200, responses[b].status)
    for _, name in ipairs { "wait", "step", "cancel", "close", "start" } do
      assert.truthy(errors[name] and errors[name]:find("group is busy", 1, true), name .. ": " .. tostring(errors[name]))
    end
  end)

  it("reports a transfer that could not start at the next wait", function()
    local g = core.group {}
    local c = core.new(g)
    c:start { url = "http://example.invalid/v1/x", headers = { "X-Api-Key: DEMO_KEY" } }
    local finished = g:wait(0)
    assert.equals(c, finished[1])
    local response = c:step(0)
    assert.equals("protocol", response.transport.kind)
    assert.truthy(response.transport.message:find("refused", 1, true))
  end)

  it("performs on a grouped client, and a grouped client's step drives the group", function()
    local g = core.group {}
    local a, b = core.new(g), core.new(g)
    b:start(faults("sleep:100"))
    local response = a:perform(faults("sleep:300"))
    assert.equals(200, response.status)
    -- b ended during a's perform: the next wait returns it at once
    local started = core.now()
    assert.same({ b }, g:wait(1000))
    assert.is_true(core.now() - started < 0.1)
    assert.equals(200, b:step(0).status)
  end)

  it("survives the collector freeing groups and clients in any order", function()
    for round = 1, 30 do
      local g = core.group { max_connections = 3 }
      local clients = {}
      for i = 1, 4 do
        clients[i] = core.new(g)
        clients[i]:start(faults(i % 2 == 0 and "rows:2000" or "sleep:50", {
          on_row = i == 4 and function() end or nil,
        }))
      end
      g:wait(round % 3 * 20)
      if round % 3 == 0 then
        g = nil
      elseif round % 3 == 1 then
        clients = nil
      else
        g:close()
        g, clients = nil, nil
      end
      collectgarbage()
      collectgarbage()
      if clients then
        for i = 1, 4 do clients[i]:cancel() end
        clients = nil
        collectgarbage()
      end
    end
    collectgarbage()
    -- still serving
    local g = core.group {}
    local c = core.new(g)
    c:start(faults("sleep:0"))
    assert.equals(200, collect(g, { c })[c].status)
  end)
end)

describe("body_file", function()
  local path = os.tmpname()
  after_each(function() os.remove(path) end)

  local function decode_file(file, options)
    local f = assert(io.open(file, "rb"))
    local dec = core.decoder(options or {})
    while true do
      local chunk = f:read(65536)
      if not chunk then break end
      assert(dec:feed(chunk))
    end
    f:close()
    return assert(dec:finish())
  end

  it("writes a 2xx body (gunzipped) to the file: the decoder fed from it gives client:perform's result", function()
    local c = core.new()
    local response = c:perform(faults(BIG_ROWS, { body_file = path }))
    assert.equals(200, response.status)
    assert.is_nil(response.result)
    assert.is_nil(response.transport)
    local size = #helper.read_file(path)
    assert.equals(size, response.body_file_bytes)
    assert.equals("{", helper.read_file(path):sub(1, 1))  -- JSON, not gzip
    assert.same(plain_result(faults(BIG_ROWS)), decode_file(path))
    local mode = io.popen("stat -c %a " .. helper.shell_quote(path)):read("*l")
    assert.equals("600", mode)
  end)

  it("works on a started, stepped or grouped transfer too", function()
    local g = core.group {}
    local a, b = core.new(g), core.new()
    local other = os.tmpname()
    a:start(faults("rows:3000", { body_file = path }))
    b:start(faults("rows:3000", { body_file = other }))
    local response
    repeat response = b:step(100) until response
    local responses = collect(g, { a })
    assert.equals(200, responses[a].status)
    assert.equals(200, response.status)
    assert.equals(helper.read_file(path), helper.read_file(other))
    assert.equals(3000, decode_file(path).tables[1].row_count)
    os.remove(other)
  end)

  it("keeps a non-2xx body in response.body and leaves the file alone", function()
    local f = assert(io.open(path, "wb"))
    f:write("before")
    f:close()
    local response = core.new():perform(faults("throttle:1", { body_file = path }))
    assert.equals(429, response.status)
    assert.truthy(response.body:find("ThrottledError", 1, true))
    assert.is_nil(response.body_file_bytes)
    assert.equals("before", helper.read_file(path))
  end)

  it("tells a disk full or a file it cannot open as kind \"file\", never success", function()
    local c = core.new()
    local response = c:perform(faults(BIG_ROWS, { body_file = "/dev/full" }))
    assert.equals("file", response.transport.kind)
    assert.truthy(response.transport.message:find("No space left on device", 1, true), response.transport.message)
    assert.is_nil(response.body_file_bytes)
    response = c:perform(faults("sleep:0", { body_file = "/nonexistent-dir/x.json" }))
    assert.equals("file", response.transport.kind)
    assert.is_nil(response.body_file_bytes)
    -- the client goes on
    assert.equals(200, c:perform(faults("sleep:0")).status)
  end)

  it("refuses body_file with raw or on_row", function()
    local c = core.new()
    assert.has_error(function() c:perform(faults("sleep:0", { body_file = path, raw = true })) end)
    assert.has_error(function() c:perform(faults("sleep:0", { body_file = path, on_row = function() end })) end)
    assert.has_error(function() c:perform(faults("sleep:0", { body_file = 42 })) end)
  end)
end)

describe("raw bodies and body_max", function()
  it("tells a raw body cut at its cap (1 MB by default), and keeps it whole under body_max", function()
    local c = core.new()
    local cut = c:perform(faults("rows:20000", { raw = true }))
    assert.equals(200, cut.status)
    assert.equals(1024 * 1024, #cut.body)
    assert.is_true(cut.body_truncated)
    local whole = c:perform(faults("rows:20000", { raw = true, body_max = 64e6 }))
    assert.is_nil(whole.body_truncated)
    local dec = core.decoder { count_only = true }
    assert(dec:feed(whole.body))
    assert.equals(20000, assert(dec:finish()).tables[1].row_count)
    local small = c:perform(faults("sleep:0", { raw = true }))
    assert.is_nil(small.body_truncated)
    assert.has_error(function() c:perform(faults("sleep:0", { raw = true, body_max = 0 })) end)
    assert.has_error(function() c:perform(faults("sleep:0", { raw = true, body_max = "1" })) end)
  end)
end)

describe("core.decoder{count_only = true}", function()
  after_each(function() helper.reset() end)

  it("counts the rows and keeps the partial error of a capped answer", function()
    helper.reset()
    helper.configure_server('{"row_cap": 1000}')
    local response = core.new():perform(request("GENERATED", "Events", { raw = true }))
    assert.equals(200, response.status)
    local dec = core.decoder { count_only = true }
    assert(dec:feed(response.body))
    local result = assert(dec:finish())
    local t = result.tables[1]
    assert.equals("PrimaryResult", t.name)
    assert.equals(1000, t.row_count)
    assert.same({}, t.rows)
    assert.equals("Id", t.columns[1].name)
    assert.equals("long", t.columns[1].type)
    assert.equals("PartialError", result.error.code)
  end)

  it("gives the full decoder's counts, names and columns, for gzip and split bytes too", function()
    local body = core.new():perform(faults("rows:3000", { raw = true })).body
    local full = core.decoder {}
    assert(full:feed(body))
    local want = assert(full:finish())
    local dec = core.decoder { count_only = true }
    for i = 1, #body, 777 do assert(dec:feed(body:sub(i, i + 776))) end
    local got = assert(dec:finish())
    assert.equals(3000, got.tables[1].row_count)
    want.tables[1].rows = {}
    assert.same(want, got)
  end)

  it("reports a broken body and refuses on_row or take", function()
    local dec = core.decoder { count_only = true }
    assert(dec:feed('{"tables":[{"name":"t","columns":[{"name":"a","type":"long"}],"rows":[[1],[2]'))
    local result, err = dec:finish()
    assert.is_nil(result)
    assert.equals("protocol", err.kind)
    assert.has_error(function() core.decoder { count_only = true, on_row = function() end } end)
    assert.has_error(function() core.decoder { count_only = true, take = true } end)
    assert.has_error(function() core.decoder { count_only = 1 } end)
  end)
end)

describe("core.batch_answers", function()
  local function batch(requests)
    local parts = {}
    for i, r in ipairs(requests) do
      parts[i] = ('{"id":"%d","workspace":"%s","path":"/query","method":"POST","body":{"query":%s}}')
        :format(i, r[1], core.query_body(r[2]):match('^{"query":(".-")'))
    end
    local response = core.new():perform {
      url = helper.endpoint() .. "/v1/$batch",
      headers = { "X-Api-Key: DEMO_KEY", "Content-Type: application/json" },
      body = '{"requests":[' .. table.concat(parts, ",") .. "]}",
      raw = true,
    }
    assert.equals(200, response.status)
    return response.body
  end

  local function decoded(body)
    local dec = core.decoder {}
    assert(dec:feed(body))
    return assert(dec:finish())
  end

  it("reads the server's answer (reversed, every 3rd body a JSON string) into the order sent", function()
    helper.reset()
    local requests = {
      { "DEMO_WORKSPACE", "Heartbeat | take 2" },
      { "FAULTS", "throttle:3" },
      { "FIXTURES", "long_extremes" },
      { "DEMO_WORKSPACE", "Heartbeat | take 1" },
    }
    local answers = assert(core.batch_answers(batch(requests)))
    assert.equals(4, #answers)
    assert.same({ "4", "3", "2", "1" }, { answers[1].id, answers[2].id, answers[3].id, answers[4].id })
    local by_id = {}
    for _, a in ipairs(answers) do by_id[a.id] = a end
    assert.equals(200, by_id["1"].status)
    assert.equals(429, by_id["2"].status)
    assert.equals("3", by_id["2"].headers["retry-after"])
    assert.truthy(by_id["2"].body:find("ThrottledError", 1, true))
    assert.is_true(by_id["3"].body_was_string)  -- the 3rd request's body came as a string
    assert.is_nil(by_id["1"].body_was_string)
    -- each body is what a plain query answers
    assert.same(plain_result(request("DEMO_WORKSPACE", "Heartbeat | take 2")).tables, decoded(by_id["1"].body).tables)
    -- longs beyond 2^53 stay exact through the decoder
    local row = decoded(by_id["3"].body).tables[1].rows[1]
    if helper.has_integers then
      assert.equals(math.maxinteger, row.max)
      assert.equals(9007199254740993, row.beyond_double)
      assert.equals(math.type(row.beyond_double), "integer")
    else
      assert.equals("9007199254740993", row.beyond_double)
    end
  end)

  it("keeps numbers' digits in an object body, and a string body's contents", function()
    local answers = assert(core.batch_answers(
      '{"responses":[{"id":"a","status":200,"body":{"tables":[{"name":"t","columns":[{"name":"n","type":"long"}],'
      .. '"rows":[[9007199254740993],[-9223372036854775808]]}],"x":[1.50,"s\\"\\u0001",true,null,{}]}},'
      .. '{"id":"b","status":204},{"id":"c","status":200,"body":null,"headers":{"X-A":"1","x-a":"2"}},'
      .. '{"id":"d","status":200,"body":"{\\"tables\\":[]}","extra":[[{"deep":1}]]}],"other":{"k":[1]}}'))
    assert.equals(4, #answers)
    assert.equals('{"tables":[{"name":"t","columns":[{"name":"n","type":"long"}],"rows":[[9007199254740993],'
      .. '[-9223372036854775808]]}],"x":[1.50,"s\\"\\u0001",true,null,{}]}', answers[1].body)
    assert.is_nil(answers[2].body)
    assert.is_nil(answers[3].body)
    assert.equals("1, 2", answers[3].headers["x-a"])
    assert.equals('{"tables":[]}', answers[4].body)
    assert.is_true(answers[4].body_was_string)
    if helper.has_integers then
      assert.equals(9007199254740993, decoded(answers[1].body).tables[1].rows[1][1])
    end
  end)

  it("refuses hostile or malformed answers with nil, err", function()
    local deep = ("["):rep(100000) .. ("]"):rep(100000)
    local huge = ("x"):rep(5 * 1024 * 1024)
    local cases = {
      "", "not json", "[]", '"responses"', "{}", '{"responses":{}}', '{"responses":[1]}',
      '{"responses":[{"status":200}]}', '{"responses":[{"id":"1"}]}',
      '{"responses":[{"id":1,"status":200}]}', '{"responses":[{"id":"1","status":"200"}]}',
      '{"responses":[{"id":"1","status":99}]}', '{"responses":[{"id":"1","status":200.5}]}',
      '{"responses":[{"id":"1","status":1e400}]}',
      '{"responses":[{"id":"1","status":200,"headers":[]}]}',
      '{"responses":[{"id":"1","status":200,"headers":{"a":1}}]}',
      '{"responses":[{"id":"1","status":200,"headers":{"a":"\\u0000"}}]}',
      '{"responses":[{"id":"1","id":"2","status":200}]}',
      '{"responses":[],"responses":[]}',
      '{"responses":[{"id":"1","status":200}]} x',
      '{"responses":[{"id":"1","status":200,"body":{"a":1}}]',
      '{"responses":[{"id":"1","status":200,"body":' .. deep .. "}]}",
      '{"responses":[{"id":"1","status":200,"body":{"a":1}}],"x":' .. deep .. "}",
      '{"responses":[{"id":"1","status":200,"body":"' .. huge,
    }
    for i, text in ipairs(cases) do
      local answers, err = core.batch_answers(text)
      assert.is_nil(answers, "case " .. i .. " was accepted")
      assert.equals("protocol", err.kind, "case " .. i)
      assert.is_string(err.message)
    end
    -- a long string is fine when the shape is
    local answers = assert(core.batch_answers('{"responses":[{"id":"' .. huge .. '","status":200,"body":"' .. huge .. '"}]}'))
    assert.equals(#huge, #answers[1].id)
    assert.equals(#huge, #answers[1].body)
    assert.has_error(function() core.batch_answers(42) end)
    assert.has_error(function() core.batch_answers() end)
  end)
end)
