-- Transfers: a call from inside a client's query raises "busy", a call
-- while a rows() loop waits between rows runs on a handle of its own (never
-- stealing the loop's), rows() tells a partial result, retry waits are capped by
-- retry_max_delay and the time left, the host's Ctrl-C gets through a
-- query and a wait, and rows()'s timeout does not count the loop's body.
local helper = require "helper"
local la = require "loganalytics"
local core = require "loganalytics.core"

local function faults(options)
  local o = { workspace = "FAULTS" }
  for k, v in pairs(options or {}) do o[k] = v end
  return helper.client(o)
end

local function assert_busy(client, ok, err)
  assert.is_false(ok, "the second transfer ran")
  assert.is_true(la.is_error(err), "not an error object: " .. tostring(err))
  assert.equals("busy", err.kind)
  assert.truthy(err.message:find(tostring(client), 1, true), err.message)
end

describe("one transfer per client", function()
  it("refuses a rows() started inside on_progress, and the query keeps its own rows", function()
    local client = faults()
    local seen
    local result = client:query("slow_headers:0.3", { on_progress = function()
      if seen then return end
      local ok, err = pcall(client.rows, client, "Heartbeat", { workspace = "DEMO_WORKSPACE" })
      seen = { ok, err }
    end })
    assert_busy(client, seen[1], seen[2])
    assert.is_table(result)
    assert.equals("success", result.status)
    assert.same({ "n", "s" }, { result.tables[1].columns[1].name, result.tables[1].columns[2].name })
    assert.equals(3, #result.tables[1].rows)
  end)

  it("refuses a query from a coroutine while another one, yielded in on_progress, has the client", function()
    if _VERSION == "Lua 5.1" and not jit then return pending("Lua 5.1 cannot yield across pcall") end
    local client = faults()
    local first = coroutine.wrap(function()
      return client:query("slow_headers:0.3", { on_progress = coroutine.yield })
    end)
    assert.is_nil(first())  -- suspended in on_progress
    local ok, err = pcall(client.query, client, "Heartbeat | take 2", { workspace = "DEMO_WORKSPACE" })
    assert_busy(client, ok, err)
    local result
    repeat result = first() until result
    assert.equals("success", result.status)
    assert.equals("n", result.tables[1].columns[1].name)
    assert.equals(3, #result.tables[1].rows)
    assert.equals(2, #assert(client:query("Heartbeat | take 2", { workspace = "DEMO_WORKSPACE" })).tables[1].rows)
  end)

  it("refuses a query from inside on_row with a busy error", function()
    local client = helper.client()
    local errs = {}
    local result = client:query("Heartbeat | take 3", { on_row = function()
      local ok, err = pcall(client.query, client, "Heartbeat | take 1")
      errs[#errs + 1] = { ok, err }
    end })
    assert.equals(3, #errs)
    for _, e in ipairs(errs) do assert_busy(client, e[1], e[2]) end
    assert.equals(3, result.tables[1].row_count)
  end)

  it("runs a second rows() loop inside the first on a handle of its own: both get every row", function()
    local client = faults()
    local expected = assert(client:query("big:1")).tables[1].row_count
    local n, inner = 0, 0
    for _ in client:rows("big:1") do
      n = n + 1
      if n <= 3 then
        for _ in client:rows("slow_headers:0") do inner = inner + 1 end
      end
    end
    assert.equals(expected, n)
    assert.equals(9, inner)
  end)

  it("runs a query while a coroutine that yielded inside a rows() loop holds the client, and the loop goes on", function()
    local client = faults()
    local expected = assert(client:query("big:1")).tables[1].row_count
    local reader = coroutine.wrap(function()
      local n = 0
      for _ in client:rows("big:1") do
        n = n + 1
        if n == 10 then coroutine.yield() end
      end
      return n
    end)
    assert.is_nil(reader())
    assert.equals(3, #assert(client:query("slow_headers:0")).tables[1].rows)
    assert.equals(expected, reader())
    assert.equals(3, #assert(client:query("slow_headers:0")).tables[1].rows)
  end)

  it("runs the next query after a loop left early, reachable or not (older Lua: no __close)", function()
    local client = helper.client()
    local n = 0
    for _ in client:rows("AzureActivity") do
      n = n + 1
      if n == 3 then break end
    end
    assert.equals(3, n)
    -- the loop's iterator may still be in this function's registers
    assert.equals(4, #assert(client:query("Heartbeat | take 4")).tables[1].rows)
    assert.equals(5, #assert(client:query("Heartbeat | take 5")).tables[1].rows)
  end)

  it("is free again once a loop was closed by its state's close()", function()
    local client = helper.client()
    local next_row, loop = client:rows("AzureActivity")
    assert.is_table(next_row())
    loop:close()
    assert.equals("closed", loop.status)
    assert.equals(4, #assert(client:query("Heartbeat | take 4")).tables[1].rows)
  end)

  it("is free again once a loop left early is unreachable (older Lua: no __close)", function()
    local client = helper.client()
    local function first_rows()
      local n = 0
      for _ in client:rows("AzureActivity") do
        n = n + 1
        if n == 3 then break end
      end
      return n
    end
    assert.equals(3, first_rows())
    assert.equals(4, #assert(client:query("Heartbeat | take 4")).tables[1].rows)
  end)
end)

describe("rows() and partial results", function()
  local client = helper.client { workspace = "FIXTURES" }

  it("says so in the loop's state once the loop has ended", function()
    local full = assert(client:query("partial"))
    assert.equals("partial", full.status)
    local next_row, loop = client:rows("partial")
    assert.is_table(loop, "rows() returned no loop state")
    assert.equals("running", loop.status)
    local n = 0
    for _ in next_row, loop, nil, loop do n = n + 1 end
    assert.equals(#full.tables[1].rows, n)
    assert.equals("partial", loop.status)
    assert.is_true(la.is_error(loop.error))
    assert.equals("PartialError", loop.error.code)
    assert.equals(n, loop.result.tables[1].row_count)
  end)

  it("raises the partial result's error after the last row with on_partial = 'raise'", function()
    local n = 0
    local ok, err = pcall(function()
      for _ in client:rows("partial", { on_partial = "raise" }) do n = n + 1 end
    end)
    assert.is_false(ok, "the loop ended without an error")
    assert.is_true(la.is_error(err), tostring(err))
    assert.equals("PartialError", err.code)
    assert.equals(#assert(client:query("partial")).tables[1].rows, n)
  end)

  it("says success for a complete result", function()
    local demo = helper.client()
    local next_row, loop = demo:rows("Heartbeat | take 3")
    for _ in next_row, loop do end
    assert.equals("success", loop.status)
    assert.is_nil(loop.error)
    assert.equals(3, loop.result.tables[1].row_count)
  end)
end)

describe("retry waits", function()
  -- fails the spec instead of sleeping for hours when a wait is not capped
  local function guarded(seconds)
    local t0 = core.now()
    return function()
      if core.now() - t0 > seconds then error("still waiting after " .. seconds .. " s", 0) end
    end
  end

  local function quick_failure(client, kql, limit)
    local t0 = core.now()
    local result, err = client:query(kql, { on_progress = guarded(limit) })
    assert.is_nil(result)
    assert.is_true(core.now() - t0 < limit, "took " .. (core.now() - t0) .. " s")
    return err
  end

  it("does not wait a Retry-After beyond retry_max_delay: the 429 is the error, at once", function()
    local err = quick_failure(faults { max_retries = 3 }, "throttle:100000", 1.5)
    assert.equals(429, err.status)
    assert.equals(100000, err.retry_after)
    err = quick_failure(faults { max_retries = 3, retry_max_delay = 1 }, "throttle:3", 1.5)
    assert.equals(3, err.retry_after)
  end)

  it("does not wait beyond the query's timeout", function()
    local err = quick_failure(faults { max_retries = 3, timeout = 2 }, "throttle:5", 1.5)
    assert.equals(429, err.status)
    assert.equals(5, err.retry_after)
    err = quick_failure(faults { max_retries = 3, timeout = 2 }, "throttle_ms:3000", 1.5)
    assert.equals(3, err.retry_after)
  end)

  it("does not wait an infinite Retry-After", function()
    local err = quick_failure(faults { max_retries = 3 }, "flaky:inf_ra:5:429:1e400", 1.5)
    assert.equals(429, err.status)
    assert.equals(math.huge, err.retry_after)
  end)

  it("waits what fits, in query and rows alike", function()
    helper.reset()
    local client = faults { max_retries = 1, timeout = 5 }
    local t0 = core.now()
    assert.equals(3, #assert(client:query("flaky:fits_q:1:429:1", { on_progress = guarded(4) })).tables[1].rows)
    assert.is_true(core.now() - t0 >= 0.9)
    local n = 0
    for _ in client:rows("flaky:fits_r:1:429:1", { on_progress = guarded(4) }) do n = n + 1 end
    assert.equals(3, n)
  end)

  it("caps a rows() loop's waits the same way", function()
    local client = faults { max_retries = 3, retry_max_delay = 1 }
    local t0 = core.now()
    local ok, err = pcall(function()
      for _ in client:rows("throttle:3", { on_progress = guarded(1.5) }) do end
    end)
    assert.is_false(ok)
    assert.equals(429, err.status)
    assert.equals(3, err.retry_after)
    assert.is_true(core.now() - t0 < 1.5)
  end)
end)

-- The interpreter this spec runs on, and a script running `body` in it with
-- the module of this build: the host whose SIGINT handler is tested.
local function interpreter()
  if jit then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

-- Runs `body` in a new interpreter, sends it SIGINT `after` seconds after it
-- said "ready", returns its exit status, its output and how long it took
-- to exit after the signal (ms).
local function interrupted(body, after, command)
  -- the sanitized module loads only into asan_lua: a plain interpreter takes
  -- the plain build (as helper.run_lua does)
  local cpath = package.cpath:gsub("build/asan/", "build/")
  local script = ("package.path = %q; package.cpath = %q\n"):format(package.path, cpath)
    .. ("local la = require 'loganalytics'\nlocal client = la.new{ endpoint = %q, workspace = 'FAULTS', api_key = 'DEMO_KEY', max_retries = 1 }\n")
      :format(helper.endpoint())
    .. "io.stdout:write('ready\\n'); io.stdout:flush()\n" .. body
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(script)
  f:close()
  local out = os.tmpname()
  command = command and command:format(cpath) or interpreter() .. " " .. file
  local sh = ([[%s > %s 2>&1 & pid=$!
for i in $(seq 20); do grep -q ready %s && break; sleep 0.05; done
sleep %s; t0=$(date +%%s%%N); kill -INT $pid; wait $pid; rc=$?; t1=$(date +%%s%%N)
echo "rc=$rc ms=$(( (t1 - t0) / 1000000 ))"]]):format(command, out, out, after)
  local pipe = io.popen(sh)
  local status = pipe:read("*a")
  pipe:close()
  local output = helper.read_file(out)
  os.remove(file)
  os.remove(out)
  return tonumber(status:match("rc=(%d+)")), output, tonumber(status:match("ms=(%d+)"))
end

describe("Ctrl-C in the lua interpreter", function()
  it("interrupts a query waiting for its response, within 0.5 s", function()
    local rc, output, ms = interrupted("print(client:query('slow_headers:5'))", 0.5)
    assert.matches("interrupted!", output)
    assert.is_not.equals(0, rc)
    assert.is_true(ms < 500, ms .. " ms after SIGINT")
  end)

  it("interrupts a retry's wait, within 0.5 s", function()
    local rc, output, ms = interrupted("print(client:query('throttle:5'))", 0.5)
    assert.matches("interrupted!", output)
    assert.is_not.equals(0, rc)
    assert.is_true(ms < 500, ms .. " ms after SIGINT")
  end)

  it("interrupts a core.sleep, within 0.5 s", function()
    local rc, output, ms = interrupted("require('loganalytics.core').sleep(5)", 0.5)
    assert.matches("interrupted!", output)
    assert.is_not.equals(0, rc)
    assert.is_true(ms < 500, ms .. " ms after SIGINT")
  end)

  it("interrupts the loganalytics command's query: exit 130, within 0.5 s", function()
    local command = ("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=%%q %s bin/loganalytics.lua "
      .. "--endpoint %s -w FAULTS --api-key DEMO_KEY --no-spinner slow_headers:5"):format(interpreter(), helper.endpoint())
    local rc, output, ms = interrupted("", 0.3, command)
    assert.equals(130, rc, output)
    assert.matches("loganalytics: interrupted", output)
    assert.is_true(ms < 500, ms .. " ms after SIGINT")
  end)

  it("leaves a client usable after an interrupted query", function()
    local rc, output = interrupted([[
local ok, err = pcall(client.query, client, 'slow_headers:5')
print('caught', err)
local r = assert(client:query('slow_headers:0'))
print('rows', #r.tables[1].rows)]], 0.3)
    assert.equals(0, rc, output)
    assert.matches("caught.-interrupted!", output)
    assert.matches("rows%s3", output)
  end)
end)

describe("rows() and timeout", function()
  it("does not count the loop body's time against timeout", function()
    local client = faults { timeout = 1 }
    local expected = assert(client:query("big:1")).tables[1].row_count
    local n = 0
    for _ in client:rows("big:1") do
      n = n + 1
      if n <= 10 then core.sleep(0.3) end
    end
    assert.equals(expected, n)
  end)

  it("still counts the network's time", function()
    local client = faults { timeout = 1 }
    local t0 = core.now()
    local ok, err = pcall(function() for _ in client:rows("slow_headers:3") do end end)
    assert.is_false(ok)
    assert.equals("timeout", err.kind)
    assert.is_true(core.now() - t0 < 2)
  end)

  it("still gives up on a stalled response (stall_timeout)", function()
    local client = faults { stall_timeout = 0.5 }
    local t0 = core.now()
    local ok, err = pcall(function() for _ in client:rows("stall:5") do end end)
    assert.is_false(ok)
    assert.equals("timeout", err.kind)
    assert.matches("stalled", err.message)
    assert.is_true(core.now() - t0 < 2)
  end)

  it("does not take the loop body's time for a stall", function()
    local client = faults { stall_timeout = 0.5 }
    local n = 0
    for _ in client:rows("big:1") do
      n = n + 1
      if n == 5 or n == 6 then core.sleep(0.7) end
    end
    assert.is_true(n > 1000)
  end)
end)
