--- Timespans for queries: ISO 8601 durations and intervals, seconds back
-- from now, or `{start=, finish=, duration=}` tables. Everything becomes the
-- ISO 8601 string the service takes; anything else raises.
--
-- `client:query` uses it for its `timespan` option; it can also be used on
-- its own, e.g. to check a user's input before a query.
-- @module loganalytics.timespan
-- @usage
-- local timespan = require "loganalytics.timespan"
-- timespan.format("P1D")                            --> "P1D"
-- timespan.format(3600)                             --> "PT3600S"
-- timespan.format{ start = 1704067200, duration = 1800.5 }
--   --> "2024-01-01T00:00:00Z/PT1800.5S"
-- timespan.is_valid("2024-01-01T00:00:00Z/PT1H")    --> true

local floor, tostring, type, pairs = math.floor, tostring, type, pairs
local format = string.format

local M = {}

local DATE_UNITS = { Y = 1, M = 2, W = 3, D = 4 }
local TIME_UNITS = { H = 1, M = 2, S = 3 }

-- An ordered run of <number><unit> parts ("1Y2M", "3H30M15.5S"); only the
-- last part may have a fraction. Returns the number of parts, or nil.
local function duration_parts(s, units)
  local pos, count, last, had_fraction = 1, 0, 0, false
  while pos <= #s do
    local after_digits = s:match("^%d+()", pos)
    if not after_digits or had_fraction then return nil end
    local after_fraction = s:match("^[.,]%d+()", after_digits)
    had_fraction = after_fraction ~= nil
    local unit_pos = after_fraction or after_digits
    local rank = units[s:sub(unit_pos, unit_pos)]
    if not rank or rank <= last then return nil end
    last, count, pos = rank, count + 1, unit_pos + 1
  end
  return count
end

--- Is `s` an ISO 8601 duration such as `"PT1H"`, `"P1D"` or `"P1DT12H"`?
-- Units in order (`Y M W D`, then `T` and `H M S`), only the last with a fraction.
-- @tparam string s
-- @treturn boolean
function M.is_duration(s)
  local date_part, time_part = s:match("^P([^T]*)T(.*)$")
  if not date_part then
    date_part, time_part = s:match("^P([^T]*)$"), nil
    if not date_part then return false end
  end
  local date_count = duration_parts(date_part, DATE_UNITS)
  if not date_count then return false end
  if time_part == nil then return date_count > 0 end
  local time_count = duration_parts(time_part, TIME_UNITS)
  return time_count ~= nil and time_count > 0
end

local function in_range(v, lo, hi)
  v = tonumber(v)
  return v >= lo and v <= hi
end

--- Is `s` an ISO 8601 date or date-time such as `"2024-01-01"`,
-- `"2024-01-01T00:00:00Z"` or `"2024-01-01T00:00:00.123+02:00"`?
-- @tparam string s
-- @treturn boolean
function M.is_datetime(s)
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y or not in_range(mo, 1, 12) or not in_range(d, 1, 31) then return false end
  if rest == "" then return true end
  local h, mi, tail = rest:match("^[T ](%d%d):(%d%d)(.*)$")
  if not h or not in_range(h, 0, 24) or not in_range(mi, 0, 59) then return false end
  local sec, after_sec = tail:match("^:(%d%d)(.*)$")
  if sec then
    if not in_range(sec, 0, 60) then return false end
    tail = after_sec:match("^%.%d+(.*)$") or after_sec
  end
  if tail == "" or tail == "Z" then return true end
  local oh, om = tail:match("^[+-](%d%d):?(%d%d)$")
  return oh ~= nil and in_range(oh, 0, 23) and in_range(om, 0, 59)
end

--- Is `s` a duration, or an interval start/end, start/duration or duration/end?
-- This is what the `timespan` option accepts as a string.
-- @tparam string s
-- @treturn boolean
function M.is_valid(s)
  if M.is_duration(s) then return true end
  local a, b = s:match("^([^/]+)/([^/]+)$")
  if not a then return false end
  if M.is_datetime(a) then return M.is_datetime(b) or M.is_duration(b) end
  return M.is_duration(a) and M.is_datetime(b)
end

-- Seconds as "PT90S" / "PT0.5S".
local function seconds_duration(seconds)
  -- microseconds at most; "1.000000" must lose its point as well as its zeros
  local text = format("%.6f", seconds):gsub("0+$", ""):gsub("%.$", "")
  if text == "0" then text = "0.000001" end
  return "PT" .. text .. "S"
end

-- Epoch seconds as "2024-01-01T00:00:00Z", with a fraction when there is one.
local function epoch_datetime(t)
  local whole = floor(t)
  local text = os.date("!%Y-%m-%dT%H:%M:%S", whole)
  local fraction = t - whole
  if fraction > 0 then
    local digits = format("%.6f", fraction):match("^0(%.%d-)0*$")
    if digits and digits ~= "." then text = text .. digits end
  end
  return text .. "Z"
end

local function fail(message)
  error("timespan: " .. message, 0)
end

local function point(v, name)
  if type(v) == "number" then
    if v ~= v or v < 0 or v >= 253402300800 then fail(name .. " is out of range") end
    return epoch_datetime(v)
  elseif type(v) == "string" then
    if not M.is_datetime(v) then fail(name .. " must be an ISO 8601 date-time, got '" .. v .. "'") end
    return v
  end
  fail(name .. " must be epoch seconds or an ISO 8601 string, got " .. type(v))
end

local function length(v)
  if type(v) == "number" then
    if not (v > 0 and v < math.huge) then fail("duration must be a positive number of seconds") end
    return seconds_duration(v)
  elseif type(v) == "string" then
    if not M.is_duration(v) then fail("duration must be an ISO 8601 duration, got '" .. v .. "'") end
    return v
  end
  fail("duration must be seconds or an ISO 8601 duration, got " .. type(v))
end

--- The ISO 8601 text for a timespan option; raises on anything malformed,
-- with a message starting `"timespan: "`.
-- @tparam string|number|table v one of:
--
-- - an ISO 8601 duration or interval string (see @{is_valid}), returned as given;
-- - a number: that many seconds back from now (`3600` gives `"PT3600S"`);
-- - a table with two of `start`, `finish` and `duration`: `start` and `finish`
--   are epoch seconds (fractions kept, e.g. `"2024-01-01T00:00:00.5Z"`) or ISO 8601
--   date-times, `duration` is seconds or an ISO 8601 duration.
-- @treturn string the text sent as the request body's `"timespan"`
function M.format(v)
  local kind = type(v)
  if kind == "string" then
    if not M.is_valid(v) then
      fail("'" .. v .. "' is not an ISO 8601 duration or interval")
    end
    return v
  elseif kind == "number" then
    if not (v > 0 and v < math.huge) then fail("seconds must be a positive number") end
    return seconds_duration(v)
  elseif kind == "table" then
    for key in pairs(v) do
      if key ~= "start" and key ~= "finish" and key ~= "duration" then
        fail("unknown field '" .. tostring(key) .. "' (use start, finish, duration)")
      end
    end
    local start, finish, duration = v.start, v.finish, v.duration
    if start ~= nil and finish ~= nil and duration == nil then
      return point(start, "start") .. "/" .. point(finish, "finish")
    elseif start ~= nil and duration ~= nil and finish == nil then
      return point(start, "start") .. "/" .. length(duration)
    elseif duration ~= nil and finish ~= nil and start == nil then
      return length(duration) .. "/" .. point(finish, "finish")
    end
    fail("give two of start, finish and duration")
  end
  fail("expected a string, number or table, got " .. kind)
end

return M
