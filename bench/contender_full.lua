-- Contender 1: this module, the full result: client:query(kql).
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "common"
local endpoint, n = bench.args()
local la = require "loganalytics"

local client = la.new{ endpoint = endpoint, workspace = "bench-" .. n, api_key = "x" }
local t0 = bench.now()
local result, err = client:query(bench.KQL)
local t1 = bench.now()
if not result then bench.fail(err) end
local tbl = result.tables[1]
if #tbl.columns ~= 15 or #tbl.rows[n] ~= 15 then bench.fail("unexpected shape") end
bench.report(t1 - t0, #tbl.rows, n)
