-- Contender 2: this module, streaming rows to a callback:
--   client:query(kql, { on_row = function(row, tbl) ... end })
-- Until the option exists, query raises "unknown query option 'on_row'": that is
-- reported as an error and the harness shows "n/a".
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local bench = require "common"
local endpoint, n = bench.args()
local la = require "loganalytics"

local client = la.new{ endpoint = endpoint, workspace = "bench-" .. n, api_key = "x" }
local count, cells = 0, 0
local function on_row(row, tbl)
  count = count + 1
  cells = cells + #row
end
local t0 = bench.now()
local ok, result, err = pcall(client.query, client, bench.KQL, { on_row = on_row })
local t1 = bench.now()
if not ok then bench.fail(result) end
if not result then bench.fail(err) end
if cells ~= 15 * n then bench.fail(("got %d cells, expected %d"):format(cells, 15 * n)) end
bench.report(t1 - t0, count, n)
