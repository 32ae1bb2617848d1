-- Shared by the Lua contenders: a wall clock, the result line, the arguments.
--   lua5.4 bench/contender_X.lua ENDPOINT ROWS
-- Each contender does one query and prints one line on stdout:
--   BENCH status=ok seconds=S rows=N [bytes=B]
--   BENCH status=error msg=...      (and exits 1)
local M = {}

local ok, system = pcall(require, "system")          -- lua-system (a dependency of busted)
if ok and system.monotime then
  M.now = system.monotime
else
  local ok2, socket = pcall(require, "socket")       -- lua-socket
  if ok2 and socket.gettime then
    M.now = socket.gettime
  else
    error("bench: needs lua-system or lua-socket for a wall clock")
  end
end

function M.args()
  local endpoint, rows = arg[1], tonumber(arg[2])
  if not endpoint or not rows then
    io.stderr:write("usage: ", arg[0], " ENDPOINT ROWS\n")
    os.exit(2)
  end
  return endpoint, math.tointeger and math.tointeger(rows) or rows  -- (LuaJIT: no tointeger)
end

function M.report(seconds, rows, expected, bytes, extra)
  if rows ~= expected then
    M.fail(("got %s rows, expected %d"):format(tostring(rows), expected))
  end
  io.write(("BENCH status=ok seconds=%.6f rows=%d%s%s\n"):format(seconds, rows,
    bytes and (" bytes=%d"):format(bytes) or "", extra or ""))
  io.stdout:flush()
end

function M.fail(msg)
  msg = tostring(msg):gsub("[\r\n]+", " ")
  io.write("BENCH status=error msg=", msg, "\n")
  io.stdout:flush()
  os.exit(1)
end

M.KQL = "AzureActivity | where TimeGenerated > ago(30d)"

return M
