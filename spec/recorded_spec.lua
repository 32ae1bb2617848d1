-- Every real service response recorded under spec/fixtures/recorded, replayed by
-- the local server and checked cell by cell against an independent reading of
-- the recording that follows API.md's type table.
local helper = require "helper"
local la = require "loganalytics"
local core = require "loganalytics.core"

local null = la.null

------------------------------------------------------------------ reference

local STRING_TYPES = {
  decimal = true, datetime = true, timespan = true, guid = true, string = true, dynamic = true,
}

-- What API.md says a cell of type `ctype` holding the decoded JSON value `v`
-- becomes. Returns the expected Lua value; a dynamic cell sent as an object
-- or array is returned as { json = v } (its text is compared by decoding).
local function expected_cell(ctype, v)
  if v == null then return null end
  if ctype == "bool" then
    if type(v) == "boolean" then return v end
    if type(v) == "number" then return v ~= 0 end
    local lower = type(v) == "string" and v:lower()
    if lower == "true" or lower == "1" then return true end
    if lower == "false" or lower == "0" then return false end
  elseif ctype == "int" or ctype == "long" then
    local n = type(v) == "string" and tonumber(v) or v
    local i = math.tointeger(n)
    if i then return i end
  elseif ctype == "real" then
    if v == "NaN" then return 0 / 0 end
    if v == "Infinity" then return math.huge end
    if v == "-Infinity" then return -math.huge end
    local n = type(v) == "string" and tonumber(v) or v
    if type(n) == "number" then return n + 0.0 end
  elseif STRING_TYPES[ctype] then
    if type(v) == "string" then return v end
    if ctype == "dynamic" then return { json = v } end
  end
  error(("the reference has no rule for a %s cell holding %s"):format(ctype, tostring(v)))
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then
    return type(a) == "number" and type(b) == "number" and a ~= a and b ~= b
  end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function describe_value(v)
  if v == null then return "la.null" end
  if type(v) == "number" then return ("%s %s"):format(math.type(v), tostring(v)) end
  return ("%s %q"):format(type(v), tostring(v))
end

-- nil when `got` is what `want` says, else a description of the difference
local function cell_mismatch(want, got)
  if type(want) == "table" then
    local decoded = type(got) == "string" and core.decode_json(got)
    if decoded ~= nil and deep_equal(want.json, decoded) then return nil end
    return "expected the JSON text of a dynamic value, got " .. describe_value(got)
  end
  if type(want) == "number" then
    if type(got) ~= "number" or math.type(got) ~= math.type(want) then
      return "expected " .. describe_value(want) .. ", got " .. describe_value(got)
    end
    if want ~= want then
      if got == got then return "expected nan, got " .. describe_value(got) end
      return nil
    end
  end
  if want ~= got or type(want) ~= type(got) then
    return "expected " .. describe_value(want) .. ", got " .. describe_value(got)
  end
  return nil
end

local innermost_message = helper.innermost_message

local function expected_kind(status)
  if status == 401 or status == 403 then return "auth" end
  if status == 408 or status == 504 then return "timeout" end
  return "service"
end

------------------------------------------------------------------ recordings

-- Each query response in the recordings: { name = query text for REPLAY,
-- file = file name, status = HTTP status, body = decoded response body }.
local function recorded_responses()
  local dir = helper.recorded_dir()
  local out, files = {}, 0
  local pipe = assert(io.popen("ls -1 '" .. dir .. "'"))
  for file in pipe:lines() do
    if file:match("%.json$") then
      files = files + 1
      local doc = assert(core.decode_json(helper.read_file(dir .. "/" .. file)), file)
      local entry
      for _, e in ipairs(doc.Entries or {}) do
        local uri = e.RequestUri or ""
        if uri:find("/query", 1, true) or uri:find("$batch", 1, true) then entry = e end
      end
      if entry then
        local body = entry.ResponseBody
        if type(body) == "table" and type(body.responses) == "table" then
          for i, sub in ipairs(body.responses) do
            out[#out + 1] = { name = file .. "#" .. (i - 1), file = file,
                              status = sub.status or 200, body = sub.body }
          end
        else
          out[#out + 1] = { name = file, file = file, status = entry.StatusCode or 200, body = body }
        end
      end
    end
  end
  pipe:close()
  return out, files
end

local responses, file_count = recorded_responses()

describe("recorded service responses", function()
  local client

  setup(function()
    client = helper.client { workspace = "REPLAY" }
  end)

  it("are found in the recordings directory", function()
    assert.is_true(file_count > 0)
    assert.is_true(#responses > 0)
  end)

  for _, rec in ipairs(responses) do
    if rec.status >= 200 and rec.status <= 299 then
      it("replay " .. rec.name .. " with every cell typed as API.md says", function()
        local result, err = client:query(rec.name)
        assert(result, "query failed: " .. tostring(err))
        local body = rec.body
        assert.are.equal(body.error ~= nil and "partial" or "success", result.status)
        assert.are.equal(#body.tables, #result.tables)
        for t, want_table in ipairs(body.tables) do
          local got = result.tables[t]
          assert.are.equal(want_table.name, got.name)
          assert.are.equal(#want_table.columns, #got.columns)
          local name_count = {}
          for j, col in ipairs(want_table.columns) do
            assert.are.equal(col.name, got.columns[j].name)
            assert.are.equal(col.type, got.columns[j].type)
            name_count[col.name] = (name_count[col.name] or 0) + 1
          end
          assert.are.equal(#want_table.rows, #got.rows)
          for r, want_row in ipairs(want_table.rows) do
            local row = got.rows[r]
            assert.are.equal(#want_table.columns, #row)
            for j, col in ipairs(want_table.columns) do
              local want = expected_cell(col.type, want_row[j] == nil and null or want_row[j])
              local problem = cell_mismatch(want, row[j])
              assert(problem == nil, ("table %d row %d column %s (%s): %s")
                :format(t, r, col.name, col.type, tostring(problem)))
              if name_count[col.name] == 1 then
                local by_name = cell_mismatch(want, row[col.name])
                assert(by_name == nil, ("table %d row %d row.%s: %s")
                  :format(t, r, col.name, tostring(by_name)))
              end
            end
          end
        end
        -- other members the service sent (render, statistics) arrive decoded
        for _, member in ipairs { "render", "statistics" } do
          if body[member] ~= nil then
            assert(deep_equal(body[member], result[member]), member .. " differs from the recording")
          end
        end
      end)
    else
      it("replay " .. rec.name .. " as an error with the service's fields", function()
        local result, err = client:query(rec.name)
        assert.is_nil(result)
        assert.is_table(err)
        local e = rec.body.error
        assert.are.equal(expected_kind(rec.status), err.kind)
        assert.are.equal(rec.status, err.status)
        assert.are.equal(e.code, err.code)
        assert.are.equal(e.message, err.message)
        assert.are.equal(e.correlationId, err.correlation_id)
        if e.innererror ~= nil then
          assert(deep_equal(e.innererror, err.innererror), "innererror differs from the recording")
        end
        local text = tostring(err)
        local inner = innermost_message(e) or e.message
        assert.truthy(text:find(inner, 1, true),
          ("tostring(err) lacks %q: %s"):format(inner, text))
        assert.is_nil(text:find("\n", 1, true))
      end)
    end
  end
end)
