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

local numbers = require "loganalytics.numbers"

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

local function is_leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's
-- days_from_civil).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Epoch seconds of an ISO 8601 date or date-time, or nil when it is not one
-- or names a day or time that does not exist (2023-02-29, 24:00:01, ...).
-- Without an offset the time is taken as UTC, as the service does.
local function parse_datetime(s)
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 then return nil end
  local last_day = MONTH_DAYS[mo] + ((mo == 2 and is_leap(y)) and 1 or 0)
  if d < 1 or d > last_day then return nil end
  local t = days_from_civil(y, mo, d) * 86400
  if rest == "" then return t end
  local h, mi, tail = rest:match("^[T ](%d%d):(%d%d)(.*)$")
  if not h or not in_range(h, 0, 24) or not in_range(mi, 0, 59) then return nil end
  local sec, fraction = 0, ""
  local sec_text, after_sec = tail:match("^:(%d%d)(.*)$")
  if sec_text then
    if not in_range(sec_text, 0, 59) then return nil end
    sec = tonumber(sec_text)
    fraction, tail = after_sec:match("^%.(%d+)(.*)$")
    if not fraction then fraction, tail = "", after_sec end
  end
  -- 24:00 is the end of the day; any later is no time at all
  if tonumber(h) == 24 and (tonumber(mi) ~= 0 or sec ~= 0 or fraction:find("[1-9]")) then
    return nil
  end
  t = t + tonumber(h) * 3600 + tonumber(mi) * 60 + sec
  if fraction ~= "" then t = t + tonumber(fraction) / 10 ^ #fraction end
  if tail == "" or tail == "Z" then return t end
  local sign, oh, om = tail:match("^([+-])(%d%d):?(%d%d)$")
  if not sign or not in_range(oh, 0, 23) or not in_range(om, 0, 59) then return nil end
  local offset = tonumber(oh) * 3600 + tonumber(om) * 60
  return sign == "+" and t - offset or t + offset
end

--- Is `s` an ISO 8601 date or date-time such as `"2024-01-01"`,
-- `"2024-01-01T00:00:00Z"` or `"2024-01-01T00:00:00.123+02:00"`, naming a
-- day and time that exist (not `"2023-02-29"`, not `"24:00:01"`)?
-- @tparam string s
-- @treturn boolean
function M.is_datetime(s)
  return parse_datetime(s) ~= nil
end

--- Is `s` a duration, or an interval start/end (end not before start),
-- start/duration or duration/end?
-- This is what the `timespan` option accepts as a string.
-- @tparam string s
-- @treturn boolean
function M.is_valid(s)
  if M.is_duration(s) then return true end
  local a, b = s:match("^([^/]+)/([^/]+)$")
  if not a then return false end
  local start_at = parse_datetime(a)
  if start_at then
    local finish_at = parse_datetime(b)
    if finish_at then return finish_at >= start_at end
    return M.is_duration(b)
  end
  return M.is_duration(a) and M.is_datetime(b)
end

-- Whole microseconds, rounded to nearest: a fraction that rounds up to a
-- whole second carries (59.9999995 s is 60 s, through minutes, hours, days,
-- months and years for a date-time). Digits by arithmetic, not "%f": the
-- process's locale may spell the decimal point as ",".
local function micro_parts(seconds)
  local whole = floor(seconds)
  local micros = floor((seconds - whole) * 1e6 + 0.5)
  if micros >= 1e6 then whole, micros = whole + 1, 0 end
  return whole, micros
end

-- ".5", ".000001": a fraction of microseconds, without trailing zeros.
local function fraction_text(micros)
  if micros <= 0 then return "" end
  return "." .. (format("%06d", micros):gsub("0+$", ""))
end

-- Seconds as "PT90S" / "PT0.5S".
local function seconds_duration(seconds)
  local whole, micros = micro_parts(seconds)
  if whole == 0 and micros == 0 then micros = 1 end  -- never "PT0S" for a positive span
  return "PT" .. numbers.format("%.0f", whole) .. fraction_text(micros) .. "S"
end

-- Epoch seconds as "2024-01-01T00:00:00Z", with a fraction when there is one.
local function epoch_datetime(t)
  local whole, micros = micro_parts(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. fraction_text(micros) .. "Z"
end

local function fail(message)
  error("timespan: " .. message, 0)
end

-- The text of a start or finish, and its epoch seconds.
local function point(v, name)
  if type(v) == "number" then
    if v ~= v or v < 0 or v >= 253402300800 then fail(name .. " is out of range") end
    local text = epoch_datetime(v)
    -- rounding to microseconds may carry into the year 10000
    if #text:match("^%d+") > 4 then fail(name .. " is out of range") end
    return text, v
  elseif type(v) == "string" then
    local t = parse_datetime(v)
    if not t then fail(name .. " must be an ISO 8601 date-time, got '" .. v .. "'") end
    return v, t
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
      local start_text, start_at = point(start, "start")
      local finish_text, finish_at = point(finish, "finish")
      if finish_at < start_at then fail("finish is before start") end
      return start_text .. "/" .. finish_text
    elseif start ~= nil and duration ~= nil and finish == nil then
      return (point(start, "start")) .. "/" .. length(duration)
    elseif duration ~= nil and finish ~= nil and start == nil then
      return length(duration) .. "/" .. (point(finish, "finish"))
    end
    fail("give two of start, finish and duration")
  end
  fail("expected a string, number or table, got " .. kind)
end

-- Seconds in a fixed-length duration unit (years and months have no fixed length).
local UNIT_SECONDS = { W = 604800, D = 86400, H = 3600, M = 60, S = 1 }

--- The seconds of a duration: a positive number of seconds, or an ISO 8601
-- duration of weeks, days, hours, minutes and seconds (`"PT1H"`,
-- `"P1DT12H"`); years and months have no fixed length and raise, as does
-- anything malformed (a message starting `"timespan: "`).
-- @tparam number|string v
-- @treturn number seconds
function M.seconds(v)
  if type(v) == "number" then
    if not (v > 0 and v < math.huge) then fail("duration must be a positive number of seconds") end
    return v
  end
  if type(v) ~= "string" then fail("duration must be seconds or an ISO 8601 duration, got " .. type(v)) end
  if not M.is_duration(v) then fail("duration must be an ISO 8601 duration, got '" .. v .. "'") end
  local date_part, time_part = v:match("^P([^T]*)T?(.*)$")
  if date_part:find("[YM]") then fail("duration '" .. v .. "' has years or months, which have no fixed length") end
  local total = 0
  for number, unit in date_part:gmatch("([%d.,]+)(%a)") do
    total = total + numbers.tonumber((number:gsub(",", "."))) * UNIT_SECONDS[unit]
  end
  for number, unit in time_part:gmatch("([%d.,]+)(%a)") do
    total = total + numbers.tonumber((number:gsub(",", "."))) * UNIT_SECONDS[unit]
  end
  if not (total > 0) then fail("duration '" .. v .. "' is not positive") end
  return total
end

--- The start and end of a timespan with both ends fixed, as epoch seconds:
-- a table `{ start =, finish = }` (or `start` and a `duration`), or an ISO
-- 8601 interval `"start/end"` or `"start/duration"` (a duration of fixed
-- length, see @{seconds}). Raises on anything else (a duration back from now
-- has no fixed ends), with a message starting `"timespan: "`.
-- @tparam string|table v
-- @treturn number start
-- @treturn number finish (after start)
function M.interval(v)
  M.format(v)  -- raises on anything malformed
  local start_at, finish_at
  if type(v) == "table" then
    if v.start == nil then fail("give a start and a finish (or a start and a duration)") end
    start_at = select(2, point(v.start, "start"))
    if v.finish ~= nil then
      finish_at = select(2, point(v.finish, "finish"))
    else
      finish_at = start_at + M.seconds(v.duration)
    end
  elseif type(v) == "string" then
    local a, b = v:match("^([^/]+)/([^/]+)$")
    start_at = a and parse_datetime(a)
    if not start_at then fail("'" .. v .. "' is not an interval with a start (start/end)") end
    finish_at = parse_datetime(b) or start_at + M.seconds(b)
  else
    fail("expected an interval string or a table with start and finish, got " .. type(v))
  end
  if not (finish_at > start_at) then fail("the interval is empty (finish is not after start)") end
  return start_at, finish_at
end

return M
