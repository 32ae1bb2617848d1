-- Run by spec/runtimes_spec.lua with each Lua runtime: a query, longs, rows().
local la = require "loganalytics"
local endpoint = arg[1]
local c = la.new{ endpoint = endpoint, workspace = "FIXTURES", api_key = "DEMO_KEY", max_retries = 0 }
local r = assert(c:query("long_extremes"))
local row = r.tables[1].rows[1]
local out = {}
for j = 1, #row do out[#out + 1] = type(row[j]) .. ":" .. tostring(row[j]) end
print(_VERSION, table.concat(out, " "))
local d = assert(c:query("Heartbeat | take 3", { workspace = "DEMO_WORKSPACE" }))
print(#d.tables[1].rows, d.tables[1].rows[1].Computer)
local n = 0
for row in c:rows("Heartbeat | take 5", { workspace = "DEMO_WORKSPACE" }) do n = n + 1 end
print("rows", n)
