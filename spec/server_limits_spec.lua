-- The local server's service limits and large answers (issues 13 and 14), proven with
-- plain curl over real sockets: generated tables streamed (FAULTS rows:N), the GENERATED
-- workspace's timespan filtering and caps (the service's PartialError), slow queries
-- answered concurrently (sleep:MS), in-flight counting, the concurrency limit's 429s,
-- $batch (out of order, string bodies), /search, and the latency and memory probes.
local helper = require "helper"
local core = require "loganalytics.core"

local function now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("*l"))
  p:close()
  return t
end

local function tmpname()
  local name = os.tmpname()
  os.remove(name)
  return name
end

-- POSTs a JSON body to a server path with the demo key; returns status, headers
-- (lower-case names), body.
local function post(path, json, curl_args)
  local head, out = tmpname(), tmpname()
  local bodyfile = tmpname()
  local f = assert(io.open(bodyfile, "w"))
  f:write(json)
  f:close()
  local cmd = ("curl -s -D %s -o %s -H 'X-Api-Key: DEMO_KEY' -H 'Content-Type: application/json' "
    .. "--data-binary @%s %s %s"):format(head, out, bodyfile, curl_args or "",
      helper.shell_quote(helper.endpoint() .. path))
  assert(helper.run(cmd))
  local headers, status = {}, nil
  for line in helper.read_file(head):gmatch("[^\r\n]+") do
    local code = line:match("^HTTP/%S+ (%d+)")
    if code then
      status = tonumber(code)
    else
      local k, v = line:match("^([^:]+):%s*(.-)%s*$")
      if k then headers[k:lower()] = v end
    end
  end
  local body = helper.read_file(out)
  os.remove(head); os.remove(out); os.remove(bodyfile)
  return status, headers, body
end

local function query(workspace, text, timespan, curl_args, route)
  local json = ('{"query":"%s"%s}'):format(text,
    timespan and (',"timespan":"%s"'):format(timespan) or "")
  return post(("/v1/workspaces/%s/%s"):format(workspace, route or "query"), json, curl_args)
end

local function decode(body)
  local value, err = core.decode_json(body)
  assert(value ~= nil, "not JSON: " .. tostring(err) .. " " .. body:sub(1, 300))
  return value
end

local function rows_of(body)
  return decode(body).tables[1].rows
end

local function stats()
  return helper.get("/_test/stats")
end

-- Runs n curl commands at once (a shell script of background jobs); returns their
-- outputs (one line each: what -w printed) and the seconds it took.
local function parallel(n, path, json, write_out)
  local script = tmpname()
  local f = assert(io.open(script, "w"))
  for i = 1, n do
    f:write(("curl -s -o /dev/null -w %s -H 'X-Api-Key: DEMO_KEY' -H 'Content-Type: application/json' "
      .. "--data %s %s > %s.%d &\n"):format(helper.shell_quote(write_out), helper.shell_quote(json),
        helper.shell_quote(helper.endpoint() .. path), script, i))
  end
  f:write("wait\n")
  f:close()
  local t0 = now()
  assert(helper.run("sh " .. script))
  local seconds = now() - t0
  local outputs = {}
  for i = 1, n do
    outputs[i] = helper.read_file(script .. "." .. i)
    os.remove(script .. "." .. i)
  end
  os.remove(script)
  return outputs, seconds
end

-- The generated table's timing: row i of N over [2025-12-01, 2026-01-01), in ticks.
local STEP_S = 31 * 86400 / 2000000   -- 1.3392 s between rows of the default 2,000,000

describe("local server limits", function()
  before_each(function() helper.reset() end)
  after_each(function() helper.reset() end)   -- the configuration back to its startup values

  describe("FAULTS rows:N", function()
    it("streams N rows with unique ids, chunked and gzip, or identity", function()
      local status, h, body = query("FAULTS", "rows:20000", nil, "--compressed")
      assert.equals(200, status)
      assert.equals("chunked", h["transfer-encoding"])
      assert.equals("gzip", h["content-encoding"])
      assert.equals("20000", h["x-test-rows"])
      local result = decode(body).tables[1]
      local names = {}
      for i, c in ipairs(result.columns) do names[i] = c.name .. ":" .. c.type end
      assert.equals("Id:long TimeGenerated:datetime Computer:string Level:string "
        .. "OperationName:string DurationMs:long CpuPercent:real Ok:bool Message:string "
        .. "Properties:dynamic", table.concat(names, " "))
      local rows, seen, computers, last_time = result.rows, {}, {}, ""
      assert.equals(20000, #rows)
      for i, row in ipairs(rows) do
        assert.equals(i, row[1])
        assert.is_nil(seen[row[1]])
        seen[row[1]] = true
        assert.truthy(row[2]:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%dZ$"), row[2])
        assert.is_true(row[2] > last_time)
        last_time = row[2]
        computers[row[3]] = true
        assert.equals("table", type(decode(row[10])))
      end
      local distinct = 0
      for _ in pairs(computers) do distinct = distinct + 1 end
      assert.is_true(distinct >= 200 and distinct <= 300, "computers: " .. distinct)
      -- escapes and non-ASCII are there
      assert.truthy(body:find('\\"', 1, true))
      assert.truthy(body:find("\\n", 1, true))
      assert.truthy(body:find("\xc3\xa9", 1, true))

      -- the same rows, not compressed, though gzip is accepted
      local status2, h2, body2 = query("FAULTS", "rows:20000:identity", nil,
        "-H 'Accept-Encoding: gzip'")
      assert.equals(200, status2)
      assert.is_nil(h2["content-encoding"])
      assert.equals("chunked", h2["transfer-encoding"])
      assert.equals(body, body2)
      -- a seed changes cells, not ids or times
      local _, _, body3 = query("FAULTS", "rows:3:identity:7")
      local a, b = rows_of(body3), rows_of(select(3, query("FAULTS", "rows:3")))
      assert.equals(a[3][1], b[3][1])
      assert.equals(a[3][2], b[3][2])
      assert.are_not.same(a, b)
      local bad = query("FAULTS", "rows:20000001")
      assert.equals(400, bad)
    end)

    it("streams 1,000,000 rows fast and in flat server memory", function()
      local probe = helper.start_probe("rss_probe.py", stats().pid)
      local t0 = now()
      local ok, written = helper.run(("curl -s -o /dev/null -w '%%{size_download}' -H 'X-Api-Key: DEMO_KEY' "
        .. "-H 'Accept-Encoding: gzip' --data '{\"query\":\"rows:1000000\"}' %s/v1/workspaces/FAULTS/query")
        :format(helper.endpoint()))
      local seconds = now() - t0
      local rss = probe.stop()
      assert.is_true(ok)
      assert.is_true(tonumber(written) > 10e6, written)   -- gzip, about 45 MB
      -- > 100k rows/s on an idle machine; 4 s leaves room for a loaded one
      assert.is_true(seconds < 10, ("1,000,000 rows took %.1f s"):format(seconds))
      assert.is_true(rss.max_kb - rss.start_kb < 16 * 1024,
        ("server RSS %d kB -> %d kB"):format(rss.start_kb, rss.max_kb))
    end)
  end)

  describe("GENERATED", function()
    it("answers the rows of the timespan exactly, [start, end)", function()
      -- rows 2..5 at 1.3392 s, 2.6784 s, 4.0176 s, 5.3568 s; row 6 at 6.696 s
      local status, h, body = query("GENERATED", "Events",
        "2025-12-01T00:00:01.3392Z/2025-12-01T00:00:06.696Z")
      assert.equals(200, status)
      assert.equals("4", h["x-test-rows"])
      local rows = rows_of(body)
      assert.equals(4, #rows)
      assert.same({ 2, 3, 4, 5 }, { rows[1][1], rows[2][1], rows[3][1], rows[4][1] })
      assert.equals("2025-12-01T00:00:01.3392000Z", rows[1][2])
      assert.equals("2025-12-01T00:00:05.3568000Z", rows[4][2])
      -- 100 ns past a row's time: the start leaves it out, the end takes it in
      rows = rows_of(select(3, query("GENERATED", "Events",
        "2025-12-01T00:00:01.3392001Z/2025-12-01T00:00:06.6960001Z")))
      assert.same({ 3, 6 }, { rows[1][1], rows[#rows][1] })
      -- an offset, and start + duration
      rows = rows_of(select(3, query("GENERATED", "Events", "2025-12-01T01:00:01.3392+01:00/PT4S")))
      assert.same({ 2, 3, 4 }, { rows[1][1], rows[2][1], rows[3][1] })
    end)

    it("splits into slices that add up: each row once", function()
      local function count(ts)
        local rows = rows_of(select(3, query("GENERATED", "Events | count", ts)))
        return rows[1][1]
      end
      assert.equals(2000000, count(nil))
      assert.equals(2000000, count("2025-11-01T00:00:00Z/2026-02-01T00:00:00Z"))
      local cut = "2025-12-16T12:34:56.7890123Z"
      local a, b = count("2025-12-01T00:00:00Z/" .. cut), count(cut .. "/2026-01-01T00:00:00Z")
      assert.equals(2000000, a + b)
      assert.equals(math.ceil((15 * 86400 + 12 * 3600 + 34 * 60 + 56.7890123) / STEP_S), a)
      -- a duration is back from the server's "now", the end of the month
      assert.equals(count("2025-12-31T00:00:00Z/2026-01-01T00:00:00Z"), count("P1D"))
      assert.equals(0, count("2026-01-01T00:00:00Z/2026-01-02T00:00:00Z"))
      local rows = rows_of(select(3, query("GENERATED", "Events | take 3", "PT1H")))
      assert.equals(3, #rows)
      assert.equals(2000000 - count("PT1H") + 1, rows[1][1])
      helper.configure_server('{"generated_rows":1000}')
      assert.equals(1000, count(nil))
      local bad = query("GENERATED", "Events | where Id > 1")
      assert.equals(400, bad)
    end)

    it("cuts at row_cap and size_cap_bytes with the service's PartialError", function()
      local want = decode(helper.read_file("spec/fixtures/partial.json")).error
      local function check(err, unit)
        -- the same shape as the project's partial fixture (and the service's answer)
        assert.equals(want.code, err.code)
        assert.equals(want.message, err.message)
        assert.equals(want.details[1].code, err.details[1].code)
        local inner = err.details[1].innererror
        assert.equals("-2133196797", inner.code)
        assert.truthy(inner.message:find("E_QUERY_RESULT_SET_TOO_LARGE", 1, true))
        assert.truthy(inner.message:find(unit, 1, true), inner.message)
      end
      local ts = "2025-12-01T00:00:00Z/2025-12-02T00:00:00Z"   -- 64,517 rows
      helper.configure_server('{"row_cap":1000}')
      local status, h, body = query("GENERATED", "Events", ts, "--compressed")
      assert.equals(200, status)
      assert.equals("1000", h["x-test-rows"])
      assert.equals("64517", h["x-test-matched-rows"])
      local answer = decode(body)
      assert.equals(1000, #answer.tables[1].rows)
      assert.equals(1000, answer.tables[1].rows[1000][1])
      check(answer.error, "1000 records")
      -- exactly at the cap: no error
      answer = decode(select(3, query("GENERATED", "Events | take 1000", ts)))
      assert.equals(1000, #answer.tables[1].rows)
      assert.is_nil(answer.error)

      helper.configure_server('{"row_cap":null,"size_cap_bytes":100000}')
      status, h, body = query("GENERATED", "Events", ts)
      assert.equals(200, status)
      assert.is_nil(h["x-test-rows"])
      local rows_json = body:match('"rows":%[(.*)%]}%],"error"')
      assert.is_true(#rows_json <= 100000 and #rows_json > 99000, #rows_json)
      answer = decode(body)
      check(answer.error, "100000 bytes")
      assert.equals(#answer.tables[1].rows, answer.tables[1].rows[#answer.tables[1].rows][1])

      helper.configure_server('{"size_cap_bytes":null,"row_cap":10,"partial_shape":"innererror"}')
      answer = decode(select(3, query("GENERATED", "Events", ts)))
      assert.equals("PartialError", answer.error.code)
      assert.equals("-2133196797", answer.error.innererror.innererror.code)
      assert.truthy(helper.innermost_message(answer.error):find("E_QUERY_RESULT_SET_TOO_LARGE", 1, true))

      -- an unknown key or a bad value is refused
      local refused = post("/_test/config", '{"row_cap":-1}')
      assert.equals(400, refused)
      assert.equals(400, (post("/_test/config", '{"rowcap":1}')))
    end)
  end)

  describe("concurrency", function()
    it("answers 20 slow queries at once and counts them in flight", function()
      local outputs, seconds = parallel(20, "/v1/workspaces/FAULTS/query",
        '{"query":"sleep:1000"}', "%{http_code} %{time_total}")
      for _, out in ipairs(outputs) do
        local status, took = out:match("^(%d+) ([%d.]+)$")
        assert.equals("200", status)
        -- each answered in its own second: none waited for another
        assert.is_true(tonumber(took) < 2, "one of 20 x sleep:1000 took " .. took .. " s")
      end
      -- all of them at once, starting 20 curl processes included (a loaded machine
      -- can take a second to start them)
      assert.is_true(seconds < 3, ("20 x sleep:1000 took %.2f s"):format(seconds))
      local s = stats()
      assert.equals(20, s.max_in_flight)
      assert.equals(0, s.in_flight)
      assert.equals(20, s.admitted)
      helper.reset()
      assert.equals(0, stats().max_in_flight)
    end)

    it("counts an answer its client abandoned, and no longer in flight", function()
      assert(helper.run(("curl -s -H 'X-Api-Key: DEMO_KEY' --data '{\"query\":\"rows:5000000\"}' "
        .. "%s/v1/workspaces/FAULTS/query | head -c 100000 > /dev/null"):format(helper.endpoint())))
      local s
      for _ = 1, 40 do   -- the server sees the close at its next write
        s = stats()
        if s.aborted == 1 then break end
        os.execute("sleep 0.05")
      end
      assert.equals(1, s.aborted)
      assert.equals(0, s.in_flight)
    end)

    it("refuses beyond concurrency_limit with 429 and Retry-After", function()
      helper.configure_server('{"concurrency_limit":2,"retry_after":3}')
      local outputs = parallel(5, "/v1/workspaces/FAULTS/query", '{"query":"sleep:1500"}',
        "%{http_code} %header{retry-after}")
      table.sort(outputs)
      assert.same({ "200 ", "200 ", "429 3", "429 3", "429 3" }, outputs)
      local s = stats()
      assert.equals(2, s.max_in_flight)
      assert.equals(3, s.throttled)
      local status, h, body = query("FAULTS", "sleep:0")
      assert.equals(200, status)
      -- a storm: the next two are refused whatever the load
      helper.configure_server('{"throttle_next":2}')
      status, h, body = query("DEMO_WORKSPACE", "Heartbeat | count")
      assert.equals(429, status)
      assert.equals("3", h["retry-after"])   -- retry_after stays as configured
      assert.equals("ThrottledError", decode(body).error.code)
      assert.equals(429, (query("DEMO_WORKSPACE", "Heartbeat | count")))
      assert.equals(200, (query("DEMO_WORKSPACE", "Heartbeat | count")))
    end)
  end)

  describe("$batch", function()
    local function request(id, workspace, text, extra)
      return ('{"id":"%s","workspace":"%s","path":"/query","method":"POST","body":{"query":"%s"}%s}')
        :format(id, workspace, text, extra or "")
    end

    it("answers out of order, some bodies as JSON strings", function()
      local body = '{"requests":[' .. table.concat({
        request("r1", "DEMO_WORKSPACE", "Heartbeat | count"),
        '{"id":"r2","path":"/workspaces/GENERATED/query","body":{"query":"Events | count",'
          .. '"timespan":"P1D"}}',
        request("r3", "GENERATED", "Events | take 2"),
        request("r4", "FAULTS", "throttle:7"),
        request("r5", "NO_SUCH", "x"),
      }, ",") .. "]}"
      local status, _, text = post("/v1/$batch", body)
      assert.equals(200, status)
      local responses = decode(text).responses
      local ids = {}
      for i, r in ipairs(responses) do ids[i] = r.id end
      assert.same({ "r5", "r4", "r3", "r2", "r1" }, ids)
      local by = {}
      for _, r in ipairs(responses) do by[r.id] = r end
      assert.equals(2000, by.r1.body.tables[1].rows[1][1])
      assert.equals(64516, by.r2.body.tables[1].rows[1][1])
      assert.equals("string", type(by.r3.body))   -- the third request's: the quirk
      assert.equals(2, #decode(by.r3.body).tables[1].rows)
      assert.equals(429, by.r4.status)
      assert.equals("7", by.r4.headers["Retry-After"])
      assert.equals(404, by.r5.status)
      assert.equals("WorkspaceNotFoundError", by.r5.body.error.code)

      helper.configure_server('{"batch_order":"given","batch_string_every":0}')
      responses = decode(select(3, post("/v1/$batch", body))).responses
      assert.equals("r1", responses[1].id)
      assert.equals("table", type(responses[3].body))
    end)

    it("refuses more than 10 requests, a body without requests, and duplicate ids", function()
      local list = {}
      for i = 1, 11 do list[i] = request("q" .. i, "DEMO_WORKSPACE", "Heartbeat | take 1") end
      local status, _, text = post("/v1/$batch", '{"requests":[' .. table.concat(list, ",") .. "]}")
      assert.equals(400, status)
      assert.equals("BadArgumentError", decode(text).error.code)
      status = post("/v1/$batch", '{"requests":[' .. table.concat(list, ",", 1, 10) .. "]}")
      assert.equals(200, status)
      status, _, text = post("/v1/$batch", "{}")
      assert.equals(400, status)
      assert.equals("body must contain 'requests' property", decode(text).error.innererror.message)
      status = post("/v1/$batch", '{"requests":[' .. list[1] .. "," .. list[1] .. "]}")
      assert.equals(400, status)
    end)
  end)

  describe("/search", function()
    it("answers as /query with a timespan, 400 without", function()
      local status, _, body = query("GENERATED", "Events | count", "P1D", nil, "search")
      assert.equals(200, status)
      assert.equals(64516, rows_of(body)[1][1])
      status, _, body = query("DEMO_WORKSPACE", "Heartbeat | take 2", "P7D", nil, "search")
      assert.equals(200, status)
      assert.equals(2, #rows_of(body))
      status, _, body = query("GENERATED", "Events | count", nil, nil, "search")
      assert.equals(400, status)
      local err = decode(body).error
      assert.equals("BadArgumentError", err.code)
      assert.equals("QueryValidationError", err.innererror.code)
    end)
  end)

  describe("probes", function()
    it("ping_probe pings over one connection and reports percentiles", function()
      local out = tmpname()
      assert(helper.run(("python3 spec/scripts/ping_probe.py %s/_test/stats --interval-ms 5 "
        .. "--seconds 1 --out %s"):format(helper.endpoint(), out)))
      local report = decode(helper.read_file(out))
      os.remove(out)
      assert.is_true(report.count > 50, "pings: " .. report.count)
      assert.equals(report.count, #report.samples)
      assert.equals(0, report.errors)
      assert.is_true(report.p50_ms <= report.p99_ms and report.p99_ms <= report.max_ms)
      -- one keep-alive connection for them all
      assert.is_true(stats().connections <= 3, stats().connections)
    end)

    it("ping_probe and rss_probe stop on SIGTERM and write their reports", function()
      local ping_probe = helper.start_probe("ping_probe.py",
        ("http://127.0.0.1:%d/"):format(helper.closed_port()))
      local stopped
      finally(function() if not stopped then ping_probe.stop() end end)
      local rss_probe = helper.start_probe("rss_probe.py", stats().pid)
      os.execute("sleep 0.5")
      local ping, rss = ping_probe.stop(), rss_probe.stop()
      stopped = true
      assert.equals(0, ping.count)        -- nothing listens there
      assert.is_true(ping.errors > 10)
      assert.equals(core.null, ping.p99_ms)
      assert.is_true(rss.samples > 5 and rss.start_kb > 1000 and rss.max_kb >= rss.end_kb)
    end)
  end)
end)
