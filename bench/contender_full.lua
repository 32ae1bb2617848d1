-- Contender 1 (and 1b-1d): this module, the full result: client:query(kql).
--   lua5.4 bench/contender_full.lua ENDPOINT ROWS [rows|columns|columns_read|epoch]
-- rows (1): the result as rows. columns (1b): shape = "columns", the result
-- as returned (cells kept in C). columns_read (1c): the same, then every cell
-- read once (:totable() of each column) inside the clock. epoch (1d): rows
-- with datetime = "epoch".
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "common"
local endpoint, n = bench.args()
local mode = arg[3] or "rows"
local la = require "loganalytics"

local options = ({
  rows = {}, columns = { shape = "columns" }, columns_read = { shape = "columns" },
  epoch = { datetime = "epoch" },
})[mode]
if not options then bench.fail("unknown mode " .. tostring(mode)) end

local client = la.new{ endpoint = endpoint, workspace = "bench-" .. n, api_key = "x" }
collectgarbage()
local heap_before = collectgarbage("count")
local t0 = bench.now()
local result, err = client:query(bench.KQL, options)
local read
if result and mode == "columns_read" then
  read = {}
  for j, col in ipairs(result.tables[1].values) do read[j] = col:totable() end
end
local t1 = bench.now()
if not result then bench.fail(err) end
local tbl = result.tables[1]
if #tbl.columns ~= 15 then bench.fail("unexpected shape") end
local rows
if options.shape == "columns" then
  -- N values in each of the 15 columns (and as many read)
  rows = #tbl.values[1]
  for j = 1, 15 do
    local col = tbl.values[j]
    if #col ~= n or col ~= tbl.columns[j].values or (read and #read[j] ~= n) then
      bench.fail("column " .. j .. " is not " .. n .. " values")
    end
  end
else
  rows = #tbl.rows
  if #tbl.rows[n] ~= 15 then bench.fail("unexpected shape") end
  if mode == "epoch" and type(tbl.rows[1][1]) ~= "number" then
    bench.fail("datetime = \"epoch\" gave a " .. type(tbl.rows[1][1]) .. " (not merged yet?)")
  end
end
-- the Lua result's own size, for "peak RSS <= Lua result + 32 MB" (after the clock)
collectgarbage()
local result_kb = collectgarbage("count") - heap_before
bench.report(t1 - t0, rows, n, nil, (" lua_kb=%.0f"):format(result_kb))
