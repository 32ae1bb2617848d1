-- One export from the GENERATED workspace in a process of its own (busted's
-- heap would hide ours), for spec/export_spec.lua and bench/export.py:
--   lua5.4 export_rows.lua ENDPOINT CONCURRENCY [SLICE] [MIN_SLICE]
-- Checks every Id comes exactly once and in order (a byte per Id in a
-- string buffer would be 2 MB; strictly increasing Ids need only the last).
-- Prints one line:
--   ok ROWS FIRST LAST SLICES SPLITS SECONDS VMHWM_KB TEMPFILES_LEFT
--   | error MESSAGE | order ID_AFTER ID
local endpoint, concurrency, slice, min_slice = arg[1], tonumber(arg[2]), arg[3], arg[4]
min_slice = tonumber(min_slice) or min_slice
local la = require "loganalytics"
local core = require "loganalytics.core"

-- the temporary files the export made, and how many are left
local made = {}
local tmpname = os.tmpname
os.tmpname = function() local name = tmpname(); made[#made + 1] = name; return name end
local function temp_files()
  local n = 0
  for _, name in ipairs(made) do
    local f = io.open(name)
    if f then f:close(); n = n + 1 end
  end
  return n
end

local function vmhwm()
  local f = io.open("/proc/self/status")
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("VmHWM:%s*(%d+)"))
end

local before = 0
local client = la.new { endpoint = endpoint, workspace = "GENERATED", api_key = "DEMO_KEY" }
local rows, first, last, bad = 0, nil, 0, nil
local t0 = core.now()
local summary, err = client:export("Events", {
  timespan = "2025-12-01T00:00:00Z/2026-01-01T00:00:00Z",
  concurrency = concurrency,
  slice = slice ~= "" and slice or nil,
  min_slice = min_slice,
  on_row = function(row)
    local id = row[1]
    if id <= last then bad = bad or { last, id } end
    first = first or id
    last = id
    rows = rows + 1
  end,
})
local seconds = core.now() - t0
client:close()
if not summary then
  print("error " .. tostring(err), temp_files() - before)
elseif bad then
  print("order " .. bad[1] .. " " .. bad[2])
else
  print(("ok %d %d %d %d %d %.2f %d %d"):format(rows, first or 0, last, summary.slices,
    summary.splits, seconds, vmhwm(), temp_files() - before))
end
