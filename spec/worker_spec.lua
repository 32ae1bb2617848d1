-- Large bodies: past 64 KiB on the wire, the response is gunzipped and
-- parsed on a second thread while the caller's thread builds the Lua values
-- (src/body_worker.c, src/event_tape.c). The FIXTURES "large" answer (20,000
-- rows of every cell kind, 0.5 MB gzipped) goes through that path; the same
-- query with threads = false stays on the calling thread and is the oracle.
local helper = require "helper"
local la = require "loganalytics"

-- Threads of this process right now (Linux), or nil.
local function thread_count()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local n = tonumber(f:read("*a"):match("\nThreads:%s*(%d+)"))
  f:close()
  return n
end

local assert_same_rows = helper.assert_same_rows

-- the query and its options: the FIXTURES workspace, plus extra options
local function large(mode, extra)
  local opts = { workspace = "FIXTURES" }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return (mode or "") .. "large", opts
end

describe("a large body decoded on the worker thread", function()
  local threaded = helper.client()
  local inline = helper.client { threads = false }
  local oracle

  setup(function()
    oracle = assert(inline:query(large()))
  end)

  it("gives the rows the calling thread alone gives, cell for cell", function()
    local rows = oracle.tables[1].rows
    assert.equals(20000, #rows)
    -- a few cells read independently of the module's parser
    assert.is_truthy(({ Informational = 1, Warning = 1, Error = 1 })[rows[1].Level])
    assert.equals('{"row": 19999, "tag": "caf\\u00e9 \\"19999\\"\\n"}', rows[20000].Detail)
    assert.equals("row 19999, line one\nline two", rows[20000].Note)
    assert.equals(la.null, rows[1].Note)  -- row 0: every fifth Note is null

    local full = assert(threaded:query(large()))
    assert_same_rows(rows, full.tables[1].rows, "full")
  end)

  it("runs on a second thread, and not with threads = false", function()
    if not thread_count() then return pending("no /proc/self/status here") end
    local before = thread_count()
    local during_threaded, during_inline, n = nil, nil, 0
    -- row 10000 is far past the first 64 KiB: the worker runs by then
    assert(threaded:query(large("", { on_row = function(row)
      n = n + 1
      if n == 10000 then during_threaded = thread_count() end
    end })))
    assert(inline:query(large("", { on_row = function()
      during_inline = math.max(during_inline or 0, thread_count())
    end })))
    assert.equals(before + 1, during_threaded)
    assert.equals(before, during_inline)
    assert.equals(before, thread_count())  -- joined when the query ended
  end)

  it("keeps signals away from its thread (SIGINT stays with the Lua thread)", function()
    if not thread_count() then return pending("no /proc/self/status here") end
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("*a"):match("^(%d+)")
    f:close()
    local function blocked_mask(tid)
      local status = assert(io.open(("/proc/%s/task/%s/status"):format(pid, tid)))
      local mask = status:read("*a"):match("\nSigBlk:%s*(%x+)")
      status:close()
      return tonumber(mask:sub(-8), 16)  -- the low 32 signals
    end
    local masks, n = nil, 0
    assert(threaded:query(large("", { on_row = function()
      n = n + 1
      if n == 10000 then
        masks = {}
        local pipe = io.popen("ls /proc/" .. pid .. "/task")
        for tid in pipe:lines() do masks[tid] = blocked_mask(tid) end
        pipe:close()
      end
    end })))
    local others = 0
    for tid, mask in pairs(masks) do
      if tid ~= pid then
        others = others + 1
        assert.equals(2, mask % 4 - mask % 2, "SIGINT (bit 1) blocked on thread " .. tid)
      end
    end
    assert.equals(1, others)
    assert.equals(0, masks[pid] % 4 - masks[pid] % 2)  -- and not on the Lua thread
  end)

  it("streams the same rows to on_row and to rows()", function()
    local got = {}
    local result = assert(threaded:query(large("", { on_row = function(row) got[#got + 1] = row end })))
    assert.equals(20000, result.tables[1].row_count)
    assert_same_rows(oracle.tables[1].rows, got, "on_row")
    local pulled = {}
    for row in threaded:rows(large()) do pulled[#pulled + 1] = row end
    assert_same_rows(oracle.tables[1].rows, pulled, "rows()")
  end)

  it("gives the same rows to a stepped transfer (on_progress)", function()
    local ticks = 0
    local result = assert(threaded:query(large("", { on_progress = function() ticks = ticks + 1 end })))
    assert_same_rows(oracle.tables[1].rows, result.tables[1].rows, "on_progress")
    assert.is_true(ticks >= 1)
  end)

  -- (the connection may be kept: by then the body can be wholly received)
  it("stops deep in the body when on_row returns false, and the next query runs", function()
    helper.reset()
    local seen = 0
    local result = assert(threaded:query(large("", { on_row = function()
      seen = seen + 1
      if seen == 15000 then return false end
    end })))
    assert.equals(15000, seen)
    assert.is_true(result.stopped)
    assert.equals(15000, result.tables[1].row_count)
    local again = assert(threaded:query(large()))
    assert.equals(20000, #again.tables[1].rows)
    assert.equals(2, #helper.get("/_test/requests"))
  end)

  it("re-raises a handler's error raised deep in the body, the client usable", function()
    local boom = setmetatable({}, { __tostring = function() return "boom" end })
    local seen = 0
    local ok, err = pcall(threaded.query, threaded, "large", { workspace = "FIXTURES",
      on_row = function()
        seen = seen + 1
        if seen == 12345 then error(boom) end
      end })
    assert.is_false(ok)
    assert.equals(boom, err)
    assert.equals(12345, seen)
    assert.equals(20000, #assert(threaded:query(large())).tables[1].rows)
  end)

  it("can be left early by a rows() loop, the next query on the same client", function()
    local n = 0
    for _ in threaded:rows(large()) do
      n = n + 1
      if n == 10000 then break end
    end
    assert.equals(10000, n)
    assert.equals(20000, #assert(threaded:query(large())).tables[1].rows)
  end)

  it("has rows() hold a few rows at a time: the transfer waits for the loop", function()
    collectgarbage()
    collectgarbage()
    local base = collectgarbage("count")
    local full = assert(threaded:query(large()))
    collectgarbage()
    local full_kb = collectgarbage("count") - base
    full = nil
    for _, client in ipairs { threaded, inline } do
      collectgarbage()
      collectgarbage()
      base = collectgarbage("count")
      local pull = client:rows(large())
      local first = pull()
      local taken_kb = collectgarbage("count") - base
      assert.is_table(first)
      -- before: every row the socket held was decoded into the queue at once
      assert.is_true(taken_kb < full_kb / 10, ("%.0f KB held after one row, the full result is %.0f KB")
        :format(taken_kb, full_kb))
      local n = 1
      for _ in pull do n = n + 1 end
      assert.equals(20000, n)
    end
  end)

  it("ends its thread when the client is closed or collected in the middle of a body", function()
    if not thread_count() then return pending("no /proc/self/status here") end
    local before = thread_count()
    local closed = helper.client()
    local pull = closed:rows(large())
    for _ = 1, 5000 do pull() end
    assert.equals(before + 1, thread_count())
    closed:close()
    assert.equals(before, thread_count())

    local dropped = helper.client()
    pull = dropped:rows(large())
    for _ = 1, 5000 do pull() end
    assert.equals(before + 1, thread_count())
    dropped, pull = nil, nil
    collectgarbage()
    collectgarbage()
    assert.equals(before, thread_count())
  end)

  for _, mode in ipairs { "truncate:", "cut:", "gzcut:" } do
    it("fails a " .. mode .. " body the way the calling thread alone does", function()
      local r1, want = inline:query(large(mode))
      local r2, got = threaded:query(large(mode))
      assert.is_nil(r1)
      assert.is_nil(r2)
      assert.equals(want.kind, got.kind)
      assert.equals(want.message, got.message)
    end)
  end
end)

describe("option threads", function()
  it("must be a boolean", function()
    local ok, err = pcall(la.new, { endpoint = helper.endpoint(), workspace = "w", api_key = "k",
                                    threads = "no" })
    assert.is_false(ok)
    assert.matches("threads", tostring(err))
  end)
end)
