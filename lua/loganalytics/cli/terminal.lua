--- What the `loganalytics` command needs of the terminal: whether a
-- standard stream is one, its width, and the spinner shown on standard
-- error while a query runs.
-- @module loganalytics.cli.terminal

local numbers = require "loganalytics.numbers"

local tonumber, setmetatable, format = tonumber, setmetatable, string.format
local getenv = os.getenv

local M = {}

--- Is file descriptor `fd` (0, 1 or 2) a terminal? Pure Lua cannot ask
-- isatty(), but a shell started by os.execute inherits our descriptors, so
-- its `test -t` answers for them (one fork, once per stream).
function M.is_tty(fd)
  local ok, _, code = os.execute("test -t " .. fd)
  if ok == 0 then return true end        -- Lua 5.1: the status itself
  return ok == true and (code == nil or code == 0)
end

--- The terminal's width in columns: COLUMNS when set, else what `stty`
-- says of the controlling terminal; nil when neither knows.
function M.width()
  local columns = tonumber(getenv("COLUMNS") or "")
  if columns and columns > 0 then return columns end
  local pipe = io.popen("stty size < /dev/tty 2>/dev/null")
  local size = pipe and pipe:read("*l")
  if pipe then pipe:close() end
  columns = size and tonumber(size:match("^%d+%s+(%d+)"))
  if columns and columns > 0 then return columns end
  return nil
end

------------------------------------------------------------------ spinner

local FRAMES = { "|", "/", "-", "\\" }
-- quick queries never show it: it appears once a query has run this long
local SHOW_AFTER = 0.25
-- and is redrawn at most this often
local FRAME_INTERVAL = 0.1
local CLEAR_LINE = "\r\27[K"

local Spinner = {}
Spinner.__index = Spinner

--- A spinner writing to `stream` (a terminal); `now` gives seconds
-- (monotonic). `label` says what runs.
function M.spinner(stream, now, label)
  local started = now()
  return setmetatable({ stream = stream, now = now, label = label, started = started,
                        drawn_at = started - FRAME_INTERVAL, frame = 0, rows = 0,
                        visible = false, stopped = false }, Spinner)
end

--- Redraws the spinner if it is time: the frame turns, the elapsed time
-- (and the rows received, once there are some) are updated.
function Spinner:tick()
  if self.stopped then return end
  local t = self.now()
  if t - self.started < SHOW_AFTER or t - self.drawn_at < FRAME_INTERVAL then return end
  self.drawn_at = t
  self.frame = self.frame % #FRAMES + 1
  local rows = self.rows > 0 and format(", %d rows", self.rows) or ""
  self.stream:write(format("%s%s %s %ss%s", CLEAR_LINE, FRAMES[self.frame], self.label,
                           numbers.format("%.1f", t - self.started), rows))
  self.visible = true
end

--- Counts a row received (shown on the spinner line).
function Spinner:row()
  self.rows = self.rows + 1
  if self.rows % 64 == 1 then self:tick() end
end

--- Erases the spinner line for good.
function Spinner:stop()
  if self.visible then self.stream:write(CLEAR_LINE) end
  self.visible, self.stopped = false, true
end

return M
