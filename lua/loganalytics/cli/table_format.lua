--- The `table` output format of the `loganalytics` command: columns
-- aligned under their names, numbers to the right; fitted to a width by
-- cutting the widest columns first, each cut cell ending in an ellipsis.
-- @module loganalytics.cli.table_format

local values = require "loganalytics.cli.values"

local ipairs, concat, max, floor = ipairs, table.concat, math.max, math.floor
local byte, gsub, rep, format = string.byte, string.gsub, string.rep, string.format

local M = {}

local GAP = "  "
local ELLIPSIS = "\226\128\166"  -- U+2026, one column wide
local NUMERIC = { int = true, long = true, real = true, decimal = true }

-- The characters of UTF-8 text, one sequence at a time (a stray byte of
-- invalid UTF-8 counts as one character).
local function characters(s)
  local i, n = 1, #s
  return function()
    if i > n then return nil end
    local b = byte(s, i)
    local length = b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC0 and 2 or 1
    local ch = s:sub(i, i + length - 1)
    i = i + length
    return ch
  end
end

local function code_point(ch)
  local b1 = byte(ch, 1)
  if b1 < 0x80 or #ch == 1 then return b1 end
  local cp = b1 % (2 ^ (7 - #ch))
  for i = 2, #ch do cp = cp * 64 + byte(ch, i) % 64 end
  return cp
end

-- Terminal columns a code point takes: 0 for combining marks and zero-width
-- characters, 2 for East Asian wide ones and emoji, 1 otherwise.
local ZERO_WIDTH = { { 0x0300, 0x036F }, { 0x200B, 0x200F }, { 0xFE00, 0xFE0F }, { 0x20D0, 0x20FF } }
local WIDE = { { 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3041, 0xA4CF }, { 0xAC00, 0xD7A3 },
               { 0xF900, 0xFAFF }, { 0xFE30, 0xFE4F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 },
               { 0x1F300, 0x1F64F }, { 0x1F900, 0x1F9FF }, { 0x20000, 0x3FFFD } }
local function in_ranges(cp, ranges)
  for _, r in ipairs(ranges) do
    if cp >= r[1] and cp <= r[2] then return true end
  end
  return false
end
local function char_width(ch)
  if #ch == 1 then return 1 end
  local cp = code_point(ch)
  if in_ranges(cp, ZERO_WIDTH) then return 0 end
  if in_ranges(cp, WIDE) then return 2 end
  return 1
end

--- Terminal columns `s` takes.
function M.width(s)
  if not s:find("[\128-\255]") then return #s end
  local w = 0
  for ch in characters(s) do w = w + char_width(ch) end
  return w
end

--- `s` cut to `width` columns, ending in an ellipsis when it was cut.
function M.truncate(s, width)
  if M.width(s) <= width then return s end
  local out, w = {}, 0
  for ch in characters(s) do
    local cw = char_width(ch)
    if w + cw > width - 1 then break end
    out[#out + 1] = ch
    w = w + cw
  end
  return concat(out) .. ELLIPSIS
end

-- Line breaks and other control characters would break the grid: they are
-- shown escaped, as in tsv.
local CONTROL = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function cell_text(v)
  return (gsub(values.text(v), "[%z\1-\31\127]", function(c)
    return CONTROL[c] or format("\\x%02x", byte(c))
  end))
end

--- Column widths fitted to `limit` columns in all (gaps included): the
-- widest columns are cut to a common width, the columns left over share
-- what remains. With no limit, or enough room, the widths are unchanged.
function M.fit(widths, limit)
  local n = #widths
  if n == 0 or not limit then return widths end
  local budget = limit - #GAP * (n - 1)
  local total = 0
  for _, w in ipairs(widths) do total = total + w end
  if total <= budget then return widths end
  -- the largest cap that fits: binary search over 1..widest
  local function sum_capped(cap)
    local s = 0
    for _, w in ipairs(widths) do s = s + (w < cap and w or cap) end
    return s
  end
  local lo, hi = 1, 1
  for _, w in ipairs(widths) do hi = max(hi, w) end
  while lo < hi do
    local mid = floor((lo + hi + 1) / 2)
    if sum_capped(mid) <= budget then lo = mid else hi = mid - 1 end
  end
  local fitted, spare = {}, budget - sum_capped(lo)
  for i, w in ipairs(widths) do
    fitted[i] = w < lo and w or lo
    if w > lo and spare > 0 then  -- the cap + 1 did not fit for all: for some
      fitted[i], spare = lo + 1, spare - 1
    end
  end
  return fitted
end

local function pad(s, width, right_aligned)
  local room = width - M.width(s)
  if room <= 0 then return s end
  return right_aligned and rep(" ", room) .. s or s .. rep(" ", room)
end

-- One table: header, dashes, rows; trailing blanks trimmed.
local function write_table(out, tbl, limit)
  local columns = tbl.columns
  local n = #columns
  local grid, widths, right = {}, {}, {}
  local header = {}
  for i, column in ipairs(columns) do
    header[i] = cell_text(column.name)
    widths[i] = M.width(header[i])
    right[i] = NUMERIC[column.type] or false
  end
  for r, row in ipairs(tbl.rows) do
    local line = {}
    for i = 1, n do
      local s = cell_text(row[i])
      line[i] = s
      local w = M.width(s)
      if w > widths[i] then widths[i] = w end
    end
    grid[r] = line
  end
  widths = M.fit(widths, limit)

  local function emit(cells)
    local parts = {}
    for i = 1, n do parts[i] = pad(M.truncate(cells[i], widths[i]), widths[i], right[i]) end
    out:write((gsub(concat(parts, GAP), " +$", "")), "\n")
  end
  emit(header)
  local dashes = {}
  for i = 1, n do dashes[i] = rep("-", widths[i]) end
  out:write(concat(dashes, GAP), "\n")
  for _, line in ipairs(grid) do emit(line) end
end

--- Writes `tables` (a result's) to `out`, a blank line between tables,
-- each line at most `limit` columns wide when there is room for one
-- column per character of the grid's minimum.
function M.write(out, tables, limit)
  for t, tbl in ipairs(tables) do
    if t > 1 then out:write("\n") end
    write_table(out, tbl, limit)
  end
end

return M
