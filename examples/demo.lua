-- The demo: queries the local server's demo workspace and prints typed rows.
--   LOGANALYTICS_ENDPOINT=http://127.0.0.1:PORT lua5.4 examples/demo.lua   (make demo does this)
-- LOGANALYTICS_WORKSPACE and LOGANALYTICS_API_KEY (as for the command) default
-- to the local server's demo workspace and key.
local la = require "loganalytics"

-- The query API: the local server's address (sh examples/run_demo.sh sets
-- it), or https://api.loganalytics.azure.com for Azure. Never guessed.
local endpoint = os.getenv("LOGANALYTICS_ENDPOINT")
if not endpoint or endpoint == "" then
  io.stderr:write("set LOGANALYTICS_ENDPOINT: the local server's address (sh examples/run_demo.sh\n"
    .. "sets it) or https://api.loganalytics.azure.com\n")
  os.exit(2)
end

local client = la.new {
  endpoint = endpoint,
  workspace = os.getenv("LOGANALYTICS_WORKSPACE") or "DEMO_WORKSPACE",
  api_key = os.getenv("LOGANALYTICS_API_KEY") or "DEMO_KEY",
}

-- A cell as text, with its Lua type where that is the point.
local function show(v)
  if v == la.null then return "null" end
  return tostring(v)
end

local function print_table(tbl)
  local widths = {}
  for j, col in ipairs(tbl.columns) do widths[j] = #col.name end
  for _, row in ipairs(tbl.rows) do
    for j = 1, #tbl.columns do widths[j] = math.max(widths[j], #show(row[j])) end
  end
  local function line(cells)
    local out = {}
    for j, text in ipairs(cells) do out[j] = text .. string.rep(" ", widths[j] - #text) end
    print("  " .. table.concat(out, "  "))
  end
  local names, types = {}, {}
  for j, col in ipairs(tbl.columns) do names[j], types[j] = col.name, col.type end
  line(names)
  line(types)
  for _, row in ipairs(tbl.rows) do
    local cells = {}
    for j = 1, #tbl.columns do cells[j] = show(row[j]) end
    line(cells)
  end
end

local function run(kql, opts)
  print("\n> " .. kql)
  local result, err = client:query(kql, opts)
  if not result then
    print("  error: " .. tostring(err))
    return
  end
  for _, tbl in ipairs(result.tables) do print_table(tbl) end
  return result
end

run("Heartbeat | summarize count() by Computer | top 5 by count_", { timespan = "P1D" })
local result = run("AzureActivity | project TimeGenerated, OperationName, Level, DurationMs, Caller | take 5")
if result then
  local row = result.tables[1].rows[1]
  print(("\n  first row by name: %s took %s ms (Lua %s %s)"):format(
    row.OperationName, show(row.DurationMs), type(row.DurationMs), math.type and math.type(row.DurationMs) or ""))
end
run("Usage | where IsBillable == true | project DataType, Quantity, IsBillable | take 3")
run("completely invalid syntax")
