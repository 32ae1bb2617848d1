-- client:export against the local server's GENERATED workspace (2,000,000
-- rows over December 2025, cut at the configured row or size cap with the
-- service's PartialError): every row once, in order, flat memory, temporary
-- files removed. The big exports run in a lua5.4 process of their own
-- (spec/scripts/export_rows.lua), whose peak RSS (VmHWM) is ours alone.
local helper = require "helper"

-- misuse: raises the module's one-line message (not any error)
local function refused(f)
  local ok, err = pcall(f)
  assert(not ok, "did not raise")
  assert(type(err) == "string" and err:find("^loganalytics: "), "raised " .. tostring(err))
end

local SPAN = "2025-12-01T00:00:00Z/2026-01-01T00:00:00Z"

-- ok, rows, first, last, slices, splits, seconds, peak_kb, files_left; or the line
local function export_rows(concurrency, slice, min_slice)
  local script = helper.read_file("spec/scripts/export_rows.lua")
  local saved = arg
  local ok, output = helper.run_lua("arg = { " .. ("%q, %q, %q, %q"):format(helper.endpoint(),
    tostring(concurrency), slice or "", min_slice or "1") .. " }\n" .. script)
  arg = saved
  local line = output:match("[^\n]*\n?$")
  assert(ok, output)
  return line
end

local function parse(line)
  local rows, first, last, slices, splits, seconds, peak, left =
    line:match("^ok (%d+) (%d+) (%d+) (%d+) (%d+) ([%d.]+) (%d+) (%d+)")
  assert(rows, line)
  return { rows = tonumber(rows), first = tonumber(first), last = tonumber(last),
           slices = tonumber(slices), splits = tonumber(splits), seconds = tonumber(seconds),
           peak_kb = tonumber(peak), left = tonumber(left) }
end

-- The exports run by export_rows are lua5.4 processes of their own: the same
-- on every runtime, so the repeat runs (LA_REPEAT_RUN=1) leave them out.
local it_once = os.getenv("LA_REPEAT_RUN") and pending or it

describe("client:export", function()
  before_each(function() helper.reset() end)

  it_once("exports 2,000,000 rows past a 100,000-row cap: each Id once, in order, under 48 MB", function()
    helper.configure_server('{"row_cap":100000}')
    local r = parse(export_rows(4))
    assert.are.equal(2000000, r.rows)
    assert.are.equal(1, r.first)
    assert.are.equal(2000000, r.last)   -- strictly increasing (checked in the script) from 1 to N: each once
    assert(r.splits >= 1, "no slice was halved")
    assert(r.peak_kb < 48 * 1024, "peak RSS " .. r.peak_kb .. " kB")
    assert.are.equal(0, r.left, "temporary files left")
  end)

  it_once("halves slices cut at the size cap too (the innererror spelling)", function()
    helper.configure_server('{"size_cap_bytes":4000000,"partial_shape":"innererror","generated_rows":200000}')
    local r = parse(export_rows(3, "P4D"))
    assert.are.equal(200000, r.rows)
    assert.are.equal(200000, r.last)
    assert(r.splits >= 1, "no slice was halved")
    assert.are.equal(0, r.left)
  end)

  it_once("refuses to halve a slice below min_slice, naming it, and removes its files", function()
    helper.configure_server('{"row_cap":1000}')
    local line = export_rows(2, "P1D", "PT1H")
    assert.matches("^error ", line)
    assert.matches("slice 2025%-12%-01T", line)
    assert.matches("min_slice", line)
    assert.matches("%s0%s*$", line)  -- no temporary file left
  end)

  it("gives rows in slice order to on_row, progress, and a summary", function()
    helper.configure_server('{"generated_rows":5000}')
    local c = helper.client { workspace = "GENERATED" }
    local want = assert(c:query("Events", { timespan = "2025-12-01T00:00:00Z/2025-12-11T00:00:00Z" }))
    assert.are.equal("success", want.status)
    helper.configure_server('{"row_cap":1000}')
    local ids, progress = {}, {}
    local summary = assert(c:export("Events", { timespan = { start = "2025-12-01T00:00:00Z", finish = "2025-12-11T00:00:00Z" },
      slice = "P10D", concurrency = 2,
      on_row = function(row, tbl) ids[#ids + 1] = row.Id; assert.are.equal("PrimaryResult", tbl.name) end,
      on_progress = function(done, total, rows) progress[#progress + 1] = { done, total, rows } end }))
    assert.are.equal(#want.tables[1].rows, #ids)
    for i, row in ipairs(want.tables[1].rows) do assert.are.equal(row.Id, ids[i]) end
    assert.are.equal(#ids, summary.rows)
    assert(summary.splits >= 1)
    local last = progress[#progress]
    assert.are.same({ summary.slices, summary.slices, summary.rows }, last)
    c:close()
  end)

  it("raises on misuse", function()
    local c = helper.client { workspace = "GENERATED" }
    local on_row = function() end
    refused(function() c:export("Events", { on_row = on_row }) end)            -- no timespan
    refused(function() c:export("Events", { timespan = "P1D", on_row = on_row }) end)  -- no fixed ends
    refused(function() c:export("Events", { timespan = SPAN }) end)            -- no on_row
    refused(function() c:export("Events", { timespan = SPAN, on_row = on_row, slice = "P1M" }) end)
    refused(function() c:export("Events", { timespan = SPAN, on_row = on_row, concurrency = 0 }) end)
    c:close()
  end)

  it("returns the failure of a slice as nil, err", function()
    local c = helper.client { workspace = "GENERATED" }
    local summary, err = c:export("Events | where nonsense", { timespan = SPAN, on_row = function() end })
    assert.is_nil(summary)
    assert.are.equal("service", err.kind)
    assert.matches("slice 2025%-12%-01", err.message)
    c:close()
  end)
end)
