--- Numbers as text and back whatever the process's locale: `string.format`,
-- `tostring` and `tonumber` follow `LC_NUMERIC` (a host that calls
-- `os.setlocale("de_DE.UTF-8")` gets `"1,5"`), while the wire, the
-- service's headers and the `loganalytics` command's output always use
-- `"."` (internal; lua-cjson's fpconv does the same dance in C).
-- @module loganalytics.numbers
-- @local

local format, find, gsub, type, tonumber = string.format, string.find, string.gsub, type, tonumber

local M = {}

-- The decimal point string.format and tonumber use now (the locale may
-- change at any time, so it is never cached).
local function decimal_point()
  return format("%.1f", 0.5):sub(2, -2)
end

local function plain(s)
  return (gsub(s, "%p", "%%%0"))
end

--- `string.format(fmt, ...)` with `"."` as the decimal point; for formats of
-- numbers only (a "," in a string argument would become "." too).
function M.format(fmt, ...)
  local text = format(fmt, ...)
  local point = decimal_point()
  if point ~= "." then text = gsub(text, plain(point), ".") end
  return text
end

--- `tonumber(s)` for decimal text written with `"."` (as in JSON and HTTP):
-- `"1.5"` is 1.5 and `"1,5"` is nil in every locale. Non-strings as tonumber.
function M.tonumber(s)
  if type(s) ~= "string" then return tonumber(s) end
  if not find(s, "^%s*[-+]?%d*%.?%d*[eE]?[-+]?%d*%s*$") or not find(s, "%d") then return nil end
  if find(s, "[eE]") and not find(s, "%d[eE][-+]?%d") then return nil end
  local point = decimal_point()
  if point ~= "." then s = gsub(s, "%.", (gsub(point, "%%", "%%%%"))) end
  return tonumber(s)
end

return M
