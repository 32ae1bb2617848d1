-- The decoder's part of the allocation-failure sweep (spec/alloc_spec.lua),
-- run under fuzz/failmalloc.so: a gzip body read from a file (fetched by the
-- spec, outside the shim) fed to core.decoder in 64 KiB pieces; prints one
-- line saying how it ended.
--   lua alloc_decoder.lua ENDPOINT BODY_FILE MODE
-- MODE "keep" keeps the rows (a full result); "take" takes them in batches
-- of 500; "values" keeps them with datetime = "epoch" and dynamic = "decode"
-- (cells made by C conversions and the tokenizer); "columns" keeps them with
-- shape = "columns". Output: success ROWS EXPECTED | error KIND MESSAGE | raised MESSAGE
local endpoint, body_file, mode = arg[1], arg[2], arg[3]
local core = require "loganalytics.core"

local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()

-- the shim arms itself at the first transfer set up: a stepped one, dropped
local http = core.new()
http:start { url = endpoint .. "/_test/stats", headers = { "X-Arm: 1" } }
http:cancel()
http:close()

local ok, result, err, rows = pcall(function()
  local values = mode == "values"
  local dec = core.decoder { gzip = true, take = mode == "take" or nil, batch = mode == "take" and 500 or nil,
                             datetime = values and "epoch" or nil, dynamic = values and "decode" or nil,
                             shape = mode == "columns" and "columns" or nil }
  local taken = 0
  for i = 1, #body, 65536 do
    local fed, e = dec:feed(body:sub(i, i + 65535))
    if not fed then return nil, e end
    if mode == "take" then
      repeat
        local n, more, list = dec:take()
        if not n then return nil, more end
        assert(#list == 2 * n)
        taken = taken + n
      until not more
    end
  end
  local r, e = dec:finish()
  if not r then return nil, e end
  local n = 0
  for _, t in ipairs(r.tables) do
    if mode == "columns" then
      for _, col in ipairs(t.values) do
        if #col ~= t.row_count then return r, nil, -1 end
      end
      n = n + t.row_count
    else
      n = n + (mode == "take" and t.row_count or #t.rows)
    end
  end
  if mode == "take" and n ~= taken then n = -1 end
  return r, nil, n
end)
if not ok then
  print("raised " .. tostring(result):gsub("\n", " "))
elseif result then
  print(("success %d %s"):format(rows, tostring(result.tables[1] and result.tables[1].row_count)))
else
  print(("error %s %s"):format(tostring(err.kind), tostring(err.message):gsub("\n", " ")))
end
