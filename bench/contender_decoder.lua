-- Contenders 6 and 6b: core.decoder fed from Lua strings, what the cosocket
-- transport (loganalytics.resty) does without nginx: the gzip body of
-- bench/data/activity-N.json.gz read into a Lua string (before the clock),
-- fed in 64 KiB slices, then finish().
--   lua5.4 bench/contender_decoder.lua DATA_DIR ROWS full|take
-- full: the full result kept; take: take = true, batch = 500, rows counted
-- and dropped (the streaming path). No network: the harness makes no
-- request for these (bytes= is checked against the gzip file's size).
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "common"
local dir, n, mode = arg[1], math.tointeger(tonumber(arg[2] or "")), arg[3]
if not dir or not n or (mode ~= "full" and mode ~= "take") then
  io.stderr:write("usage: ", arg[0], " DATA_DIR ROWS full|take\n")
  os.exit(2)
end
local core = require "loganalytics.core"

local f = assert(io.open(("%s/activity-%d.json.gz"):format(dir, n), "rb"))
local gz = f:read("a")
f:close()
local SLICE = 64 * 1024

collectgarbage()
local t0 = bench.now()
local dec = core.decoder { gzip = true, take = mode == "take" or nil,
                           batch = mode == "take" and 500 or nil }
local rows = 0
for i = 1, #gz, SLICE do
  local ok, err = dec:feed(gz:sub(i, i + SLICE - 1))
  if not ok then bench.fail(err.message) end
  if mode == "take" then
    repeat
      local got, more = dec:take()
      rows = rows + got
    until not more
  end
end
local result, err = dec:finish()
local t1 = bench.now()
if not result then bench.fail(err.message) end
local tbl = result.tables[1]
if #tbl.columns ~= 15 then bench.fail("unexpected shape") end
if mode == "full" then
  rows = #tbl.rows
  if #tbl.rows[n] ~= 15 then bench.fail("unexpected shape") end
elseif tbl.row_count ~= rows then
  bench.fail("row_count " .. tostring(tbl.row_count) .. " but " .. rows .. " rows taken")
end
bench.report(t1 - t0, rows, n, #gz)
