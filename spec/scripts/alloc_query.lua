-- One query for the allocation-failure sweep (spec/alloc_spec.lua), run
-- under fuzz/failmalloc.so: prints one line saying how it ended.
--   lua alloc_query.lua ENDPOINT FAULT THREADS ON_ROW
-- FAULT is a FAULTS query (big:1, big:1:identity); THREADS "false" turns the
-- body worker off; ON_ROW "on_row" streams the rows, "columns" asks for
-- shape = "columns" (every column must hold every row). Output:
--   success ROWS EXPECTED | error KIND MESSAGE | raised MESSAGE
local endpoint, fault, threads, on_row = arg[1], arg[2], arg[3], arg[4]
local la = require "loganalytics"

local ok, result, err, expected = pcall(function()
  local client = la.new { endpoint = endpoint, workspace = "FAULTS", api_key = "DEMO_KEY",
                          max_retries = 0, threads = threads ~= "false" }
  local streamed = 0
  local opts = {}
  if on_row == "on_row" then
    opts.on_row = function() streamed = streamed + 1 end
  elseif on_row == "columns" then
    opts.shape = "columns"
  end
  local r, e = client:query(fault, opts)
  client:close()
  if r then
    local n = 0
    for _, t in ipairs(r.tables) do
      if on_row == "columns" then
        for _, col in ipairs(t.values) do
          if #col ~= t.row_count then return r, nil, -1 end
        end
        n = n + t.row_count
      else
        n = n + (on_row == "on_row" and t.row_count or #t.rows)
      end
    end
    if on_row == "on_row" and n ~= streamed then n = -1 end  -- row_count must be what on_row saw
    return r, nil, n
  end
  return nil, e
end)
if not ok then
  print("raised " .. tostring(result):gsub("\n", " "))
elseif result then
  -- "success" only with every row and no stop
  print(("%s %d %s"):format(result.stopped and "stopped" or result.status, expected,
    tostring(result.tables[1] and result.tables[1].row_count)))
else
  print(("error %s %s"):format(tostring(err.kind), tostring(err):gsub("\n", " ")))
end
