-- Contender 1: this module, the full result: client:query(kql).
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "common"
local endpoint, n = bench.args()
local la = require "loganalytics"

local client = la.new{ endpoint = endpoint, workspace = "bench-" .. n, api_key = "x" }
collectgarbage()
local heap_before = collectgarbage("count")
local t0 = bench.now()
local result, err = client:query(bench.KQL)
local t1 = bench.now()
if not result then bench.fail(err) end
local tbl = result.tables[1]
if #tbl.columns ~= 15 or #tbl.rows[n] ~= 15 then bench.fail("unexpected shape") end
-- the Lua result's own size, for "peak RSS <= Lua result + 32 MB" (after the clock)
collectgarbage()
local result_kb = collectgarbage("count") - heap_before
bench.report(t1 - t0, #tbl.rows, n, nil, (" lua_kb=%.0f"):format(result_kb))
