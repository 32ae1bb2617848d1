-- core.decoder, the sans-I/O decoder (src/lua_decoder.c): fed the bytes the
-- local server sends (fetched with curl, identity and gzip), in any split,
-- it gives what client:query gives for the same answer, cell for cell; its
-- batches, take mode, on_row stop and errors; its misuse raises and broken
-- input is nil, err, never a crash.
local helper = require "helper"
local core = require "loganalytics.core"

local null = core.null

------------------------------------------------------------------ bytes

local function tmpname()
  local name = os.tmpname()
  os.remove(name)
  return name
end

local function write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The body the server at `endpoint` sends for query `kql` on `workspace`,
-- as it is on the wire: gzip only when `gzip` (curl decodes nothing).
local function raw_body(endpoint, workspace, kql, gzip)
  local request, out = tmpname(), tmpname()
  write_file(request, core.query_body(kql))
  local command = ("curl -s -o %s -w '%%{http_code}' -X POST -H 'X-Api-Key: DEMO_KEY' "
    .. "-H 'Content-Type: application/json' %s --data-binary @%s %s")
    :format(out, gzip and "-H 'Accept-Encoding: gzip'" or "", request,
            shell_quote(endpoint .. "/v1/workspaces/" .. workspace .. "/query"))
  local pipe = assert(io.popen(command))
  local status = pipe:read("*a")
  pipe:close()
  os.remove(request)
  local bytes = helper.read_file(out)
  os.remove(out)
  assert(status == "200", kql .. ": HTTP " .. tostring(status))
  if gzip then
    assert(bytes:sub(1, 2) == "\31\139", kql .. ": the server did not gzip the body")
  end
  return bytes
end

-- Feeds `bytes` in pieces of `size` (nil: whole) to a new decoder.
local function decode(bytes, size, options)
  local dec = core.decoder(options or {})
  size = size or math.max(#bytes, 1)
  for i = 1, #bytes, size do
    local ok, err = dec:feed(bytes:sub(i, i + size - 1))
    if not ok then return nil, err end
  end
  if #bytes == 0 then assert(dec:feed("")) end
  return dec:finish()
end

------------------------------------------------------------------ comparing

local function numtype(v)
  return math.type and math.type(v) or "number"
end

local function describe_value(v)
  if v == null then return "core.null" end
  if type(v) == "number" then return ("%s %s"):format(numtype(v), tostring(v)) end
  return ("%s %q"):format(type(v), tostring(v))
end

local function same_value(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if numtype(a) ~= numtype(b) then return false end
    return a == b or (a ~= a and b ~= b)
  end
  if type(a) == "table" then
    for k, v in pairs(a) do if not same_value(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  return a == b
end

-- Asserts that the decoder's result `got` holds what client:query gave
-- (`want`): tables, columns, every cell (type and value, NaN equal to NaN),
-- cells by column name, row counts, statistics, render, error.
local function assert_same_result(want, got, what)
  assert.equals(#want.tables, #got.tables, what .. ": tables")
  for t, wt in ipairs(want.tables) do
    local gt = got.tables[t]
    local where = ("%s: table %d"):format(what, t)
    assert.equals(wt.name, gt.name, where)
    assert.equals(#wt.columns, #gt.columns, where .. ": columns")
    local names = {}
    for j, col in ipairs(wt.columns) do
      assert.equals(col.name, gt.columns[j].name, where)
      assert.equals(col.type, gt.columns[j].type, where)
      names[col.name] = (names[col.name] or 0) + 1
    end
    assert.equals(wt.row_count, gt.row_count, where .. ": row_count")
    assert.equals(#wt.rows, #gt.rows, where .. ": rows")
    for r, wrow in ipairs(wt.rows) do
      local grow = gt.rows[r]
      assert.equals(#wrow, #grow, ("%s row %d: cells"):format(where, r))
      for j, col in ipairs(wt.columns) do
        if not same_value(wrow[j], grow[j]) then
          error(("%s row %d column %s: expected %s, got %s"):format(where, r, col.name,
            describe_value(wrow[j]), describe_value(grow[j])))
        end
        if names[col.name] == 1 and not same_value(wrow[j], grow[col.name]) then
          error(("%s row %d: row.%s is %s"):format(where, r, col.name, describe_value(grow[col.name])))
        end
      end
    end
  end
  for _, member in ipairs { "statistics", "render" } do
    assert(same_value(want[member], got[member]), what .. ": " .. member .. " differs")
  end
  -- the Lua layer turns the service's error into an error object (partial)
  assert.equals(want.status == "partial", got.error ~= nil, what .. ": error member")
  assert.is_nil(got.stopped, what)
end

------------------------------------------------------------------ the answers

-- Each answer: { name =, endpoint =, workspace =, query = }
local function recorded_answers()
  local dir, out = helper.recorded_dir(), {}
  local pipe = assert(io.popen("ls -1 '" .. dir .. "'"))
  for file in pipe:lines() do
    if file:match("%.json$") then
      local doc = assert(core.decode_json(helper.read_file(dir .. "/" .. file)), file)
      local entry
      for _, e in ipairs(doc.Entries or {}) do
        local uri = e.RequestUri or ""
        if uri:find("/query", 1, true) or uri:find("$batch", 1, true) then entry = e end
      end
      local body = entry and entry.ResponseBody
      if type(body) == "table" and type(body.responses) == "table" then
        for i, sub in ipairs(body.responses) do
          if (sub.status or 200) == 200 and type(sub.body) == "table" and sub.body.tables then
            out[#out + 1] = { name = "recorded " .. file .. "#" .. (i - 1), workspace = "REPLAY",
                              query = file .. "#" .. (i - 1) }
          end
        end
      elseif entry and (entry.StatusCode or 200) == 200 and type(body) == "table" and body.tables then
        out[#out + 1] = { name = "recorded " .. file, workspace = "REPLAY", query = file }
      end
    end
  end
  pipe:close()
  return out
end

-- The query results of spec/fixtures/wire (the REST API's own examples):
-- their bodies written to a directory a second local server serves as its
-- FIXTURES. Returns the answers and that server's endpoint.
local function wire_answers()
  local dir = tmpname()
  local pipe = assert(io.popen(([[python3 - %s <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
os.makedirs(out)
for path in sorted(glob.glob("spec/fixtures/wire/*.json")):
    doc = json.load(open(path, encoding="utf-8"))
    body = ((doc.get("responses") or {}).get("200") or {}).get("body")
    name = os.path.basename(path)[:-5]
    bodies = [(name, body)]
    if isinstance(body, dict) and isinstance(body.get("responses"), list):
        bodies = [("%%s-%%d" %% (name, i), sub.get("body")) for i, sub in enumerate(body["responses"])
                  if sub.get("status", 200) == 200]
    for n, b in bodies:
        if isinstance(b, dict) and "tables" in b:
            open(os.path.join(out, n + ".json"), "w", encoding="utf-8").write(json.dumps(b))
            print(n)
EOF]]):format(shell_quote(dir))))
  local names = {}
  for line in pipe:lines() do names[#names + 1] = line end
  pipe:close()
  local stat = helper.read_file("/proc/self/stat")
  local port = helper.background_port(("python3 server/la_server.py --port 0 --fixtures %s --watch-pid %d")
    :format(shell_quote(dir), tonumber(stat:match("^(%d+)"))))
  assert(port, "the second local server did not start")
  local endpoint = "http://127.0.0.1:" .. port
  local out = {}
  for _, n in ipairs(names) do
    out[#out + 1] = { name = "wire " .. n, endpoint = endpoint, workspace = "FIXTURES", query = n }
  end
  return out, dir
end

-- The top-level fixtures that are query results (served raw by FIXTURES).
local FIXTURE_RESULTS = {
  "all_types", "bools", "cli_cells", "duplicate_names", "dynamic_values", "empty_rows",
  "escapes", "long_extremes", "partial", "reals", "server_fields", "large",
}

-- false: whole. The repeat runs of the suite (valgrind, ASan, other
-- runtimes: LA_REPEAT_RUN=1) check memory and runtimes, not every split
-- again: they take pieces of 4 KiB and whole (the modes' specs below still
-- cut a body in small pieces there).
local SIZES = os.getenv("LA_REPEAT_RUN") and { 4096, false } or { 1, 7, 4096, false }

describe("core.decoder fed the bytes of an answer", function()
  local answers = recorded_answers()
  local wire, wire_dir = wire_answers()
  for _, a in ipairs(wire) do answers[#answers + 1] = a end
  for _, name in ipairs(FIXTURE_RESULTS) do
    -- (the 20,000-row answer takes minutes under valgrind: make test runs it)
    if not (name == "large" and os.getenv("LA_REPEAT_RUN")) then
      answers[#answers + 1] = { name = "fixture " .. name, workspace = "FIXTURES", query = name }
    end
  end

  teardown(function()
    os.execute("rm -rf " .. shell_quote(wire_dir))
  end)

  it("covers the recorded, wire and fixture answers", function()
    local kinds = {}
    for _, a in ipairs(answers) do kinds[a.name:match("^%S+")] = true end
    assert.is_true(kinds.recorded and kinds.wire and kinds.fixture and #answers >= 20)
  end)

  for _, a in ipairs(answers) do
    it("gives client:query's result, cell for cell, in any split, gzip or not: " .. a.name, function()
      local endpoint = a.endpoint or helper.endpoint()
      local client = helper.client { endpoint = endpoint, workspace = a.workspace }
      local want = assert(client:query(a.query))
      client:close()
      for _, gzip in ipairs { false, true } do
        local bytes = raw_body(endpoint, a.workspace, a.query, gzip)
        for _, size in ipairs(SIZES) do
          -- the large answer (2.4 MB; 0.5 MB gzipped) in small pieces: 7-byte
          -- gzip pieces only (the smaller answers cover every split; this
          -- keeps the valgrind run of the suite short)
          if not (a.query == "large" and size and size < 4096
                  and not (size == 7 and gzip and not os.getenv("LA_REPEAT_RUN"))) then
            local what = ("%s, %s, %s"):format(a.name, gzip and "gzip" or "identity",
                                                size and size .. "-byte pieces" or "whole")
            local got, err = decode(bytes, size or nil, { gzip = gzip })
            assert(got, what .. ": " .. tostring(err and err.message))
            assert_same_result(want, got, what)
          end
        end
      end
    end)
  end

  it("fails as client:query does on a 200 that is not a query result", function()
    local client = helper.client { workspace = "FIXTURES" }
    for _, name in ipairs { "bad_not_a_result", "bad_tables_null", "bad_long_rows",
                            "bad_short_rows", "bad_columns_twice", "not_json" } do
      local _, want = client:query(name)
      assert.equals("protocol", want.kind, name)
      for _, gzip in ipairs { false, true } do
        local bytes = raw_body(helper.endpoint(), "FIXTURES", name, gzip)
        for _, size in ipairs { 1, false } do
          local got, err = decode(bytes, size or nil, { gzip = gzip })
          assert.is_nil(got, name)
          assert.equals("protocol", err.kind, name)
          assert.equals(want.message, err.message, name)
        end
      end
    end
    client:close()
  end)
end)

------------------------------------------------------------------ modes

local BODY = '{"tables":[{"name":"A","columns":[{"name":"n","type":"long"},{"name":"s","type":"string"}],'
  .. '"rows":[' .. (function()
    local rows = {}
    for i = 1, 1000 do rows[i] = ('[%d,"v%d"]'):format(i, i % 13) end
    return table.concat(rows, ",")
  end)() .. ']},{"name":"B","columns":[{"name":"x","type":"int"}],"rows":[[1],[2],[3]]}],'
  .. '"statistics":{"query":{"executionTime":0.5}}}'

local function pieces(bytes, size)
  local out = {}
  for i = 1, #bytes, size do out[#out + 1] = bytes:sub(i, i + size - 1) end
  return out
end

describe("core.decoder's batches", function()
  for _, mode in ipairs { "keep", "on_row", "take" } do
    it("give every row in order, never more than N per take (" .. mode .. ")", function()
      local seen, N = {}, 17
      local options = { batch = N }
      if mode == "on_row" then
        options.on_row = function(row, tbl) seen[#seen + 1] = { row, tbl } end
      elseif mode == "take" then
        options.take = true
      end
      local dec = core.decoder(options)
      local takes = 0
      for _, piece in ipairs(pieces(BODY, 500)) do
        assert.is_true(dec:feed(piece))
        repeat
          local before = #seen
          local n, more, list = dec:take()
          takes = takes + 1
          assert(n <= N, "a take made " .. n .. " rows")
          if mode == "take" then
            assert.equals(2 * n, #list)
            for i = 1, #list, 2 do seen[#seen + 1] = { list[i], list[i + 1] } end
          elseif mode == "on_row" then
            assert.equals(before + n, #seen)
          end
          assert(not more or n == N, "more rows pending after a short take")
        until not more
      end
      local result = assert(dec:finish())
      if mode == "keep" then
        for _, t in ipairs(result.tables) do
          for _, row in ipairs(t.rows) do seen[#seen + 1] = { row, t } end
        end
      else
        assert.equals(0, #result.tables[1].rows)
      end
      assert.equals(1003, #seen)
      assert(takes >= 1003 / N, "too few takes: " .. takes)
      for i = 1, 1000 do
        assert.equals(i, seen[i][1].n)
        assert.equals("v" .. (i % 13), seen[i][1].s)
        assert.equals(result.tables[1], seen[i][2])
      end
      for i = 1, 3 do
        assert.equals(i, seen[1000 + i][1].x)
        assert.equals(result.tables[2], seen[1000 + i][2])
      end
      assert.equals(1000, result.tables[1].row_count)
      assert.equals(3, result.tables[2].row_count)
      assert.equals(0.5, result.statistics.query.executionTime)
    end)
  end

  it("leave nothing to take without batch: feed makes every row", function()
    local rows = 0
    local dec = core.decoder { on_row = function() rows = rows + 1 end }
    assert.is_true(dec:feed(BODY:sub(1, 2000)))
    local made = rows
    assert.is_true(made > 0)
    local n, more = dec:take()
    assert.equals(0, n)
    assert.is_false(more)
    assert.is_true(dec:feed(BODY:sub(2001)))
    assert.is_table(dec:finish())
    assert.equals(1003, rows)
  end)

  it("make no row before take() (batch: feed only parses)", function()
    local rows = 0
    local dec = core.decoder { batch = 5, on_row = function() rows = rows + 1 end }
    assert.is_true(dec:feed(BODY))
    assert.equals(0, rows)
    assert.same({ 5, true }, { dec:take() })
    assert.equals(5, rows)
    local result = assert(dec:finish())  -- the rest, all of it
    assert.equals(1003, rows)
    assert.equals(1000, result.tables[1].row_count)
  end)

  it("take mode without batch: take() gives every row parsed so far", function()
    local dec = core.decoder { take = true }
    assert.is_true(dec:feed(BODY))
    local n, more, list = dec:take()
    assert.equals(1003, n)
    assert.is_false(more)
    assert.equals(2006, #list)
    assert.equals(1000, list[1999].n)
    local n2, more2, list2 = dec:take()
    assert.same({ 0, false, {} }, { n2, more2, list2 })
    assert.equals(1000, assert(dec:finish()).tables[1].row_count)
  end)
end)

describe("core.decoder's on_row", function()
  it("stops at false: later feeds are ignored, finish says stopped", function()
    for _, batch in ipairs { false, 7 } do
      local calls = 0
      local dec = core.decoder { batch = batch or nil, on_row = function(row)
        calls = calls + 1
        assert.equals(calls, row.n)
        if calls == 10 then return false end
      end }
      local p = pieces(BODY, 300)
      assert.is_true(dec:feed(p[1]))
      while batch and select(2, dec:take()) do end
      for i = 2, #p do assert.is_true(dec:feed(p[i])) end
      assert.is_true(dec:feed("this is not JSON"))  -- ignored too
      local result = assert(dec:finish())
      assert.is_true(result.stopped)
      assert.equals(10, calls)
      assert.equals(10, result.tables[1].row_count)
    end
  end)

  it("raises out of feed, take and finish; the decoder then fails for good", function()
    local function boom(row) if row.n == 3 then error("handler said no") end end
    for _, where in ipairs { "feed", "take", "finish" } do
      local dec = core.decoder { on_row = boom, batch = where ~= "feed" and 100 or nil }
      local ok, err
      if where == "feed" then
        ok, err = pcall(dec.feed, dec, BODY)
      elseif where == "take" then
        assert.is_true(dec:feed(BODY))
        ok, err = pcall(dec.take, dec)
      else
        assert.is_true(dec:feed(BODY))
        ok, err = pcall(dec.finish, dec)
      end
      assert.is_false(ok, where)
      assert.matches("handler said no", tostring(err), 1, true)
      for _, method in ipairs { "feed", "take", "finish" } do
        local ok2, err2 = pcall(dec[method], dec, "{}")
        assert.is_false(ok2, where .. " then " .. method)
        assert.matches("on_row handler raised", err2, 1, true)
      end
      dec:close()
    end
  end)
end)

------------------------------------------------------------------ errors

local function gzip_of(bytes)
  local input, output = tmpname(), tmpname()
  write_file(input, bytes)
  assert(os.execute(("gzip -n -c %s > %s"):format(input, output)))
  local gz = helper.read_file(output)
  os.remove(input)
  os.remove(output)
  return gz
end

describe("core.decoder on broken input", function()
  local function assert_protocol(message, what, got, err)
    assert.is_nil(got, what)
    assert.equals("protocol", err.kind, what)
    if message then assert.matches(message, err.message, 1, true) end
  end

  it("malformed JSON: nil, err of kind protocol with the parser's message", function()
    assert_protocol("unexpected", "malformed", decode('{"tables":[}', 1))
    assert_protocol(nil, "text", decode("not JSON at all"))
    assert_protocol("ended before", "empty", decode(""))
    assert_protocol(nil, "two documents", decode('{"tables":[]} {}'))
  end)

  it("a truncated body: nil, err at finish", function()
    for _, cut in ipairs { 1, 10, math.floor(#BODY / 2), #BODY - 1 } do
      assert_protocol("ended before", "cut at " .. cut, decode(BODY:sub(1, cut), 7))
    end
  end)

  it("broken gzip: corrupt or cut members are protocol errors", function()
    local gz = gzip_of(BODY)
    assert.is_table(decode(gz, 3, { gzip = true }))
    assert_protocol("gzip", "cut gzip", decode(gz:sub(1, math.floor(#gz / 2)), 5, { gzip = true }))
    assert_protocol("gzip", "no trailer", decode(gz:sub(1, #gz - 4), 5, { gzip = true }))
    local bad = gz:sub(1, 40) .. string.char((gz:byte(41) + 1) % 256) .. gz:sub(42)
    assert_protocol(nil, "corrupt deflate data", decode(bad, 64, { gzip = true }))
    local crc = gz:sub(1, #gz - 8) .. string.char((gz:byte(#gz - 7) + 1) % 256) .. gz:sub(#gz - 6)
    assert_protocol("gzip", "wrong CRC", decode(crc, nil, { gzip = true }))
    assert_protocol("gzip", "not gzip at all", decode(BODY, nil, { gzip = true }))
    -- bytes after the member are ignored, as libcurl does
    assert.is_table(decode(gz .. "trailing", 9, { gzip = true }))
  end)

  it("after a failure or finish, feed and finish are nil, err (not a crash)", function()
    local dec = core.decoder {}
    local _, first = dec:feed("]")
    assert.equals("protocol", first.kind)
    for _ = 1, 2 do
      assert_protocol(first.message, "feed after failure", dec:feed("{}"))
      assert_protocol(first.message, "finish after failure", dec:finish())
    end
    dec = core.decoder { gzip = true }
    assert.is_true(dec:feed(gzip_of(BODY):sub(1, 100)))
    _, first = dec:finish()
    assert.equals("the gzip stream ended early", first.message)
    assert_protocol(first.message, "feed after a failed finish", dec:feed("{}"))
    dec = core.decoder {}
    assert.is_true(dec:feed(BODY))
    assert.is_table(dec:finish())
    assert_protocol("finished", "feed after finish", dec:feed("{}"))
    assert_protocol("finished", "finish after finish", dec:finish())
    assert.same({ 0, false }, { dec:take() })
  end)

  it("hostile input: random bytes, deep nesting, huge numbers never crash", function()
    math.randomseed(13)
    for _ = 1, 200 do
      local n = math.random(0, 300)
      local t = {}
      for i = 1, n do t[i] = string.char(math.random(0, 255)) end
      local junk = table.concat(t)
      for _, gzip in ipairs { false, true } do
        local got, err = decode(junk, math.random(1, 16), { gzip = gzip })
        if not got then assert.equals("protocol", err.kind) end
      end
    end
    local deep = ('{"tables":[{"name":"T","columns":[{"name":"d","type":"dynamic"}],"rows":[['
      .. ("["):rep(100000) .. ("]"):rep(100000) .. ']]}]}')
    local got, err = decode(deep, 4096)
    assert(got or err.kind == "protocol", "deep nesting")
    got, err = decode('{"tables":[],"statistics":' .. ('{"a":'):rep(50000) .. "1"
                      .. ("}"):rep(50000) .. "}", 999)
    assert(got or err.kind == "protocol", "deep statistics")
    assert_protocol("number too long", "a 5000-digit number",
      decode('{"tables":[{"name":"T","columns":[{"name":"x","type":"long"}],'
             .. '"rows":[[' .. ("9"):rep(5000) .. ']]}]}', 3))
  end)
end)

describe("core.decoder's life", function()
  it("holds a 1 MB string cell, in 7-byte pieces and gzip", function()
    local big = ("0123456789abcdef"):rep(65536)
    local body = '{"tables":[{"name":"T","columns":[{"name":"s","type":"string"}],"rows":[["'
      .. big .. '"],["x"]]}]}'
    local got = assert(decode(body, 7))
    assert.equals(big, got.tables[1].rows[1].s)
    assert.equals("x", got.tables[1].rows[2].s)
    got = assert(decode(gzip_of(body), 4096, { gzip = true }))
    assert.equals(big, got.tables[1].rows[1].s)
  end)

  it("closes twice; a closed decoder raises", function()
    local dec = core.decoder { gzip = true }
    dec:close()
    dec:close()
    assert.matches("closed", tostring(dec))
    for _, method in ipairs { "feed", "take", "finish" } do
      local ok, err = pcall(dec[method], dec, "x")
      assert.is_false(ok)
      assert.matches("the decoder is closed", err, 1, true)
    end
  end)

  it("is collected with its C memory, mid-body and with a cycle through on_row", function()
    for _ = 1, 200 do
      local dec
      dec = core.decoder { on_row = function() return dec ~= nil end, batch = 3 }
      dec:feed(BODY:sub(1, 5000))
    end
    collectgarbage()
    collectgarbage()
  end)

  it("refuses to be fed, taken, finished or closed from its own on_row", function()
    for _, method in ipairs { "feed", "take", "finish", "close" } do
      local dec
      dec = core.decoder { on_row = function() dec[method](dec, BODY) end }
      local ok, err = pcall(dec.feed, dec, BODY)
      assert.is_false(ok, method)
      assert.matches("the decoder is busy", err, 1, true)
    end
  end)

  it("refuses misuse with an argument error", function()
    local cases = {
      { nil, "table expected" },
      { { gzip = 1 }, "'gzip' must be a boolean" },
      { { take = "yes" }, "'take' must be a boolean" },
      { { on_row = true }, "'on_row' must be a function" },
      { { on_row = print, take = true }, "exclude each other" },
      { { batch = 0 }, "'batch' must be a whole number" },
      { { batch = 1.5 }, "'batch' must be a whole number" },
      { { batch = "10" }, "'batch' must be a whole number" },
      { { batch = 0 / 0 }, "'batch' must be a whole number" },
      { { batch = 1e300 }, "'batch' must be a whole number" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(core.decoder, case[1])
      assert.is_false(ok, case[2])
      assert.matches(case[2], err, 1, true)
    end
    local dec = core.decoder {}
    assert.has_error(function() dec:feed() end)
    assert.has_error(function() dec:feed({}) end)
    assert.has_error(function() dec:feed(123) end)
    assert.has_error(function() dec.feed(nil, "x") end)
    assert.has_error(function() dec.feed(io.stdout, "x") end)
    assert.has_error(function() dec.take(core.new()) end)
  end)
end)

------------------------------------------------------------------ client raw

describe("client:perform{ raw = true }", function()
  it("keeps the body whole, of any status, unparsed", function()
    local http = core.new()
    for _, case in ipairs { { "all_types", 200 }, { "not_json", 200 }, { "throttled_429", 429 } } do
      local response = http:perform {
        url = helper.endpoint() .. "/v1/workspaces/FIXTURES/query", raw = true,
        headers = { "X-Api-Key: DEMO_KEY", "Content-Type: application/json" },
        body = core.query_body(case[1]),
      }
      assert.equals(case[2], response.status)
      assert.is_nil(response.result)
      assert.is_nil(response.parse_error)
      assert.is_string(response.body)
      if case[2] == 200 then
        -- as the server has it (the gzip libcurl asked for is undone)
        assert.equals(raw_body(helper.endpoint(), "FIXTURES", case[1], false), response.body)
      else
        assert.is_table(core.decode_json(response.body).error)
      end
    end
    -- stepped too
    http:start { url = helper.endpoint() .. "/v1/workspaces/FIXTURES/query", raw = true,
                 headers = { "X-Api-Key: DEMO_KEY" }, body = core.query_body("large") }
    local response
    repeat response = http:step(100) until response
    assert.equals(200, response.status)
    assert.is_nil(response.result)
    assert.equals(1024 * 1024, #response.body)  -- capped as error bodies are
    http:close()
  end)
end)
