-- Allocation-failure injection: a query of a multi-thousand-row response
-- (FAULTS big:1, about 2,100 AzureActivity-like rows), run once per
-- allocation of the response's path with that one allocation failing
-- (fuzz/failmalloc.so, LD_PRELOAD, armed when the transfer starts; it counts
-- the allocations of the module, libcurl and cJSON). Each run must either
-- succeed with every row or fail with an error object (or raise Lua's "not
-- enough memory"): never success with fewer rows, never a stop the caller
-- did not ask for, never a crash or a hang.
-- The suite runs a stride of the points (ALLOC_STRIDE, default 7);
-- `make check-alloc` runs every one (ALLOC_STRIDE=1).
local helper = require "helper"

local SHIM = "build/failmalloc.so"
local CALLERS = "loganalytics/core.so:libcurl:libcjson"
local STRIDE = tonumber(os.getenv("ALLOC_STRIDE") or "") or 7

local CONFIGS = {
  { name = "gzip, body worker", fault = "big:1", threads = "true", on_row = "-" },
  { name = "identity, body worker", fault = "big:1:identity", threads = "true", on_row = "-" },
  { name = "gzip, threads = false", fault = "big:1", threads = "false", on_row = "-" },
  { name = "identity, threads = false, on_row", fault = "big:1:identity", threads = "false",
    on_row = "on_row" },
  { name = "gzip, body worker, on_row", fault = "big:1", threads = "true", on_row = "on_row" },
  -- core.decoder fed from Lua strings (the cosocket transport's path)
  { name = "decoder, gzip, full result", fault = "big:1", decoder = "keep" },
  { name = "decoder, gzip, take in batches", fault = "big:1", decoder = "take" },
  -- datetimes converted in C, dynamic cells decoded by the core's tokenizer
  -- (it adds few allocations of its own: a wider stride unless ALLOC_STRIDE
  -- is set, as make check-alloc does; none in repeat runs)
  { name = "decoder, gzip, datetime epoch, dynamic decode", fault = "big:1", decoder = "values",
    stride = os.getenv("ALLOC_STRIDE") and STRIDE or 5 * STRIDE, once = true },
  -- shape = "columns": the cells in C columns (src/lua_columns.c), a wider stride too
  { name = "gzip, body worker, shape = columns", fault = "big:1", threads = "true", on_row = "columns",
    stride = os.getenv("ALLOC_STRIDE") and STRIDE or 4 * STRIDE },
  { name = "decoder, gzip, shape = columns", fault = "big:1", decoder = "columns",
    stride = os.getenv("ALLOC_STRIDE") and STRIDE or 4 * STRIDE },
}

-- The gzip body of a FAULTS query, as the server sends it (for the decoder
-- runs: fetched here, outside the shim).
local body_files = {}
local function body_file(fault)
  if not body_files[fault] then
    local request, out = os.tmpname(), os.tmpname()
    local f = assert(io.open(request, "w"))
    f:write(require("loganalytics.core").query_body(fault))
    f:close()
    assert(os.execute(("curl -sf -o %s -H 'X-Api-Key: DEMO_KEY' -H 'Accept-Encoding: gzip' "
      .. "-H 'Content-Type: application/json' --data-binary @%s %s/v1/workspaces/FAULTS/query")
      :format(out, request, helper.endpoint())))
    os.remove(request)
    body_files[fault] = out
  end
  return body_files[fault]
end

local report = os.tmpname()

-- One run failing allocation `at` (0: none); returns its line and the
-- shim's "<counted> <failed>" report.
local function run(config, at)
  os.remove(report)
  local command = table.concat({
    "env", "LUA_PATH='lua/?.lua;;'", "LUA_CPATH='build/?.so;;'",
    "LD_PRELOAD=" .. SHIM, "FAILMALLOC_AT=" .. at, "FAILMALLOC_CALLERS=" .. CALLERS,
    "FAILMALLOC_REPORT=" .. report,
    "timeout -s KILL 60 lua5.4",
    config.decoder and "spec/scripts/alloc_decoder.lua" or "spec/scripts/alloc_query.lua",
    helper.endpoint(),
    config.decoder and body_file(config.fault) or config.fault,
    config.decoder or config.threads, config.on_row or "", "2>&1; echo \"exit $?\"",
  }, " ")
  local pipe = assert(io.popen(command))
  local out = pipe:read("*a")
  pipe:close()
  local f = io.open(report)
  local counted, failed
  if f then
    counted, failed = f:read("*n", "*n")
    f:close()
  end
  return out, counted, failed
end

describe("a failed allocation on a response's path", function()
  local totals = { points = 0 }
  for _, config in ipairs(CONFIGS) do
    local test = (config.once and os.getenv("LA_REPEAT_RUN")) and pending or it
    test("is an error or a complete result, never a short success (" .. config.name .. ")", function()
      local STRIDE = config.stride or STRIDE
      assert.is_true(io.open(SHIM) ~= nil, SHIM .. " is missing: make build")
      local out, counted = run(config, 0)
      local rows = tonumber(out:match("^success (%d+)"))
      assert(rows and rows > 2000, "the run without a failure: " .. out)
      assert(counted and counted > 100, "the shim counted no allocations: " .. tostring(counted))
      local bad, kinds = {}, {}
      local first = 1 + (#config.name % STRIDE)  -- the configurations cover different points
      for at = first, counted, STRIDE do
        local line, _, failed = run(config, at)
        local status, n = line:match("^(%S+) (%S+)")
        local ok
        if status == "success" then
          ok = tonumber(n) == rows
        elseif status == "error" then
          -- the decoder's input is a whole, valid body: only memory may fail it
          ok = not config.decoder or n == "memory"
          kinds[n] = (kinds[n] or 0) + 1
        elseif status == "raised" then
          ok = line:find("memory", 1, true) ~= nil
          kinds.raised = (kinds.raised or 0) + 1
        end
        if not ok then bad[#bad + 1] = ("allocation %d (failed: %s): %s"):format(at, tostring(failed), line) end
        totals.points = totals.points + 1
      end
      local summary = {}
      for k, v in pairs(kinds) do summary[#summary + 1] = k .. "=" .. v end
      table.sort(summary)
      io.stderr:write(("\n[alloc sweep] %s: %d allocations, every %d swept; errors: %s\n")
        :format(config.name, counted, STRIDE, table.concat(summary, " ")))
      assert(#bad == 0, #bad .. " runs went wrong:\n" .. table.concat(bad, "\n", 1, math.min(#bad, 20)))
    end)
  end
end)
