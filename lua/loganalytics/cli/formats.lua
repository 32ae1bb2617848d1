--- The output formats of the `loganalytics` command: csv, tsv, ndjson
-- (streamed, a row at a time), json and table (the whole result).
--
-- A writer has `streams` (whether it wants rows through `row(row, tbl)`
-- as they arrive) and `finish(result)`, called once with the result.
-- @module loganalytics.cli.formats

local values = require "loganalytics.cli.values"
local table_format = require "loganalytics.cli.table_format"

local concat, ipairs = table.concat, ipairs
local find, gsub = string.find, string.gsub
local text, json_string, json_cell = values.text, values.json_string, values.json_cell

local M = {}

M.names = { "table", "csv", "tsv", "json", "ndjson" }

------------------------------------------------------------------ delimited

-- RFC 4180: a field holding a comma, quote, CR or LF is quoted, its quotes
-- doubled.
local function csv_field(s)
  if find(s, '[,"\r\n]') then return '"' .. gsub(s, '"', '""') .. '"' end
  return s
end

local TSV_ESCAPES = { ["\\"] = "\\\\", ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r" }
local function tsv_field(s)
  return (gsub(s, "[\\\t\n\r]", TSV_ESCAPES))
end

-- Rows as lines of fields: a header line of column names per table, a
-- blank line between tables. A table with no rows still gets its header
-- (at the end: tables are only seen through their rows while streaming).
local function delimited(out, separator, line_end, field)
  local writer = { streams = true }
  local current, seen, count = nil, {}, 0
  local fields = {}

  local function header(tbl)
    if count > 0 then out:write(line_end) end
    count = count + 1
    seen[tbl], current = true, tbl
    local names = {}
    for i, column in ipairs(tbl.columns) do names[i] = field(column.name) end
    out:write(concat(names, separator), line_end)
  end

  function writer.row(row, tbl)
    if tbl ~= current then header(tbl) end
    local n = #tbl.columns
    for i = 1, n do fields[i] = field(text(row[i])) end
    out:write(concat(fields, separator, 1, n), line_end)
  end

  function writer.finish(result)
    for _, tbl in ipairs(result.tables) do
      if not seen[tbl] then header(tbl) end
    end
  end
  return writer
end

------------------------------------------------------------------ JSON

-- Per table: `"name":` for each column, and the column types.
local function json_keys(tbl)
  local keys, types = {}, {}
  for i, column in ipairs(tbl.columns) do
    keys[i] = json_string(column.name) .. ":"
    types[i] = column.type
  end
  return keys, types
end

-- One JSON object per row, column name -> value, one per line.
local function ndjson(out)
  local writer = { streams = true }
  local current, keys, types
  local members = {}
  function writer.row(row, tbl)
    if tbl ~= current then
      current = tbl
      keys, types = json_keys(tbl)
    end
    local n = #keys
    for i = 1, n do members[i] = keys[i] .. json_cell(row[i], types[i]) end
    out:write("{", concat(members, ",", 1, n), "}\n")
  end
  function writer.finish() end
  return writer
end

local function json_error(err)
  local fields = { json_string("code") .. ":" .. values.json(err.code),
                   json_string("message") .. ":" .. values.json(err.message) }
  if err.details ~= nil then fields[3] = json_string("details") .. ":" .. values.json(err.details) end
  return "{" .. concat(fields, ",") .. "}"
end

-- One document in the shape of the API's response, one row per line:
-- {"tables":[{"name":..,"columns":[{"name":..,"type":..}],"rows":[
-- [..],
-- ]}],"error":..,"statistics":..,"render":..}
local function json(out)
  local writer = { streams = false }
  function writer.finish(result)
    out:write('{"tables":[')
    for t, tbl in ipairs(result.tables) do
      if t > 1 then out:write(",") end
      local columns, types = {}, {}
      for i, column in ipairs(tbl.columns) do
        columns[i] = '{"name":' .. json_string(column.name) .. ',"type":' .. json_string(column.type) .. "}"
        types[i] = column.type
      end
      out:write('{"name":', json_string(tbl.name), ',"columns":[', concat(columns, ","), '],"rows":[')
      local cells = {}
      for r, row in ipairs(tbl.rows) do
        for i = 1, #types do cells[i] = json_cell(row[i], types[i]) end
        out:write(r > 1 and ",\n[" or "\n[", concat(cells, ",", 1, #types), "]")
      end
      out:write(#tbl.rows > 0 and "\n]}" or "]}")
    end
    out:write("]")
    if result.error ~= nil then out:write(',"error":', json_error(result.error)) end
    if result.statistics ~= nil then out:write(',"statistics":', values.json(result.statistics)) end
    if result.render ~= nil then out:write(',"render":', values.json(result.render)) end
    out:write("}\n")
  end
  return writer
end

------------------------------------------------------------------ writers

local MAKERS = {
  csv = function(out) return delimited(out, ",", "\r\n", csv_field) end,
  tsv = function(out) return delimited(out, "\t", "\n", tsv_field) end,
  ndjson = ndjson,
  json = json,
  table = function(out, options)
    local writer = { streams = false }
    function writer.finish(result) table_format.write(out, result.tables, options.width) end
    return writer
  end,
}

--- A writer for format `name` onto the file `out`; `options.width` limits
-- the table format's lines (nil: no limit).
function M.new(name, out, options)
  local make = MAKERS[name]
  return make and make(out, options or {})
end

return M
