-- Hostile networks: every fault of the local server's FAULTS workspace,
-- driven through a real client, with the outcome, the retries and the
-- waits checked; the client must stay usable after each.
local helper = require "helper"
local la = require "loganalytics"
local core = require "loganalytics.core"

local function faulty(options)
  local o = { workspace = "FAULTS", retry_delay = 0.01 }
  for k, v in pairs(options or {}) do o[k] = v end
  return helper.client(o)
end

-- Runs the query, returning result, err and the seconds it took.
local function timed(client, kql, opts)
  local started = core.now()
  local result, err = client:query(kql, opts)
  return result, err, core.now() - started
end

local function requests_seen()
  return #helper.get("/_test/requests")
end

local function still_usable(client)
  local result, err = client:query("Heartbeat | take 2", { workspace = "DEMO_WORKSPACE" })
  assert.is_table(result, tostring(err))
  assert.equals(2, #result.tables[1].rows)
end

before_each(function() helper.reset() end)

describe("retries", function()
  it("succeed after 5xx answers, with growing waits", function()
    local client = faulty { max_retries = 3, retry_delay = 0.1 }
    local result, err, seconds = timed(client, "flaky:grow:3:503")
    assert.is_table(result, tostring(err))
    assert.equals(3, #result.tables[1].rows)
    assert.equals(4, requests_seen())
    -- 0.1 + 0.2 + 0.4 s, each within the 80%-120% jitter
    assert.is_true(seconds >= 0.56 and seconds < 2, "took " .. seconds)
  end)

  for _, status in ipairs { 408, 429, 500, 502, 504 } do
    it("retry HTTP " .. status, function()
      local result, err = faulty { max_retries = 1 }:query("flaky:s" .. status .. ":1:" .. status)
      assert.is_table(result, tostring(err))
      assert.equals(2, requests_seen())
    end)
  end

  it("retry a connection that is reset before any answer", function()
    local result, err = faulty { max_retries = 2 }:query("flaky_reset:r:2")
    assert.is_table(result, tostring(err))
    assert.equals(3, #result.tables[1].rows)
  end)

  it("give up after max_retries, saying how many tries were made", function()
    local client = faulty { max_retries = 2 }
    local result, err = client:query("flaky:never:50:500")
    assert.is_nil(result)
    assert.equals("service", err.kind)
    assert.equals(500, err.status)
    assert.equals(3, err.attempts)
    assert.matches("after 3 tries", tostring(err), 1, true)
    assert.equals(3, requests_seen())
    still_usable(client)
  end)

  it("never retry 400, 403 or 404", function()
    local client = helper.client { max_retries = 3, retry_delay = 0.01 }
    assert.is_nil((client:query("completely invalid syntax")))
    assert.equals(1, requests_seen())
    helper.reset()
    assert.is_nil((helper.client { api_key = "WRONG", max_retries = 3 }:query("Heartbeat")))
    assert.equals(1, requests_seen())
    helper.reset()
    assert.is_nil((client:query("Heartbeat", { workspace = "NO_SUCH_WORKSPACE" })))
    assert.equals(1, requests_seen())
  end)

  it("wait as long as Retry-After says, in seconds", function()
    local result, err, seconds = timed(faulty { max_retries = 1, retry_delay = 30 }, "flaky:ra:1:429:1")
    assert.is_table(result, tostring(err))
    assert.is_true(seconds >= 1 and seconds < 3, "took " .. seconds)
  end)

  it("wait as long as x-ms-retry-after-ms says", function()
    local _, err, seconds = timed(faulty { max_retries = 1, retry_delay = 30 }, "throttle_ms:300")
    assert.equals(429, err.status)
    assert.equals(2, err.attempts)
    assert.is_true(seconds >= 0.3 and seconds < 2, "took " .. seconds)
    assert.is_true(math.abs(err.retry_after - 0.3) < 0.01)
  end)

  it("wait until the HTTP date Retry-After gives", function()
    local _, err = faulty { max_retries = 1, retry_delay = 30 }:query("throttle_date:2")
    assert.equals(429, err.status)
    local log = helper.get("/_test/requests")
    assert.equals(2, #log)
    -- the server dated its Retry-After ceil(received + 2); HTTP dates are whole seconds, so
    -- the retry may come up to a second after that date, never before it
    local date = math.ceil(log[1].received + 2)
    assert.is_true(log[2].received >= date, "retried " .. (date - log[2].received) .. " s early")
    assert.is_true(log[2].received < date + 2, "retried " .. (log[2].received - date) .. " s late")
  end)

  it("report a throttled query with its retry_after when retries run out", function()
    local _, err = faulty { max_retries = 0 }:query("throttle:7")
    assert.equals("service", err.kind)
    assert.equals(429, err.status)
    assert.equals(7, err.retry_after)
  end)
end)

describe("timeouts", function()
  it("give up on slow headers after `timeout`", function()
    local client = faulty { timeout = 1, max_retries = 0 }
    local result, err, seconds = timed(client, "slow_headers:4")
    assert.is_nil(result)
    assert.equals("timeout", err.kind)
    assert.is_true(seconds < 2.5, "took " .. seconds)
    still_usable(client)
  end)

  it("give up on a body that stalls after `stall_timeout`", function()
    local client = faulty { stall_timeout = 1, max_retries = 0 }
    local result, err, seconds = timed(client, "stall:4")
    assert.is_nil(result)
    assert.equals("timeout", err.kind)
    assert.matches("stalled", err.message)
    assert.is_true(seconds < 3, "took " .. seconds)
    still_usable(client)
  end)
end)

describe("broken responses", function()
  local client = faulty { max_retries = 0 }

  local cases = {
    { "reset_mid_body", "network" },
    { "truncate_body", "protocol" },
    { "truncate_gzip", "protocol", "gzip" },
    { "gzip_bad_crc", "protocol", "gzip data is corrupt" },
    { "invalid_json", "protocol" },
  }
  for _, case in ipairs(cases) do
    it(case[1] .. " gives kind '" .. case[2] .. "' and leaves the client usable", function()
      local result, err = client:query(case[1])
      assert.is_nil(result)
      assert.equals(case[2], err.kind)
      if case[3] then assert.matches(case[3], err.message) end
      assert.is_nil(tostring(err):find("\n", 1, true))
      still_usable(client)
    end)
  end

  it("a gzip header with a name, a comment and a header CRC, arriving in pieces, decodes", function()
    -- (ISA-L 2.30 alone refuses such a header when it is split; src/gunzip.c reads it)
    local gzipped = assert(client:query("gzip_header_crc"))
    local plain = assert(client:query("stall:0"))
    assert.equals(2000, #plain.tables[1].rows)
    helper.assert_same_rows(plain.tables[1].rows, gzipped.tables[1].rows, "gzip_header_crc")
  end)

  it("a 502 HTML page gives kind 'service' with a readable message", function()
    local _, err = client:query("html502")
    assert.equals("service", err.kind)
    assert.equals(502, err.status)
    assert.matches("502 Bad Gateway", err.message)
    assert.is_nil(err.message:find("<", 1, true))
  end)

  it("cells of the wrong type are converted where they can be and kept as sent otherwise", function()
    local result, err = client:query("wrong_types")
    assert.is_table(result, tostring(err))
    local seen = {}
    for _, row in ipairs(result.tables[1].rows) do
      for j, col in ipairs(result.tables[1].columns) do
        local v = row[j]
        if v ~= la.null then seen[#seen + 1] = col.type .. "=" .. tostring(v) .. ":" .. type(v) end
      end
    end
    local text = table.concat(seen, " ")
    assert.matches("long=abc:string", text, 1, true)
    assert.matches("long=1.5:number", text, 1, true)
    assert.matches("bool=maybe:string", text, 1, true)
    assert.matches("real=x:string", text, 1, true)
    assert.matches('int={"a":1}:string', text, 1, true)
  end)

  it("a long beyond 64 bits becomes the nearest float (infinity beyond doubles)", function()
    local result, err = client:query("long_overflow")
    assert.is_table(result, tostring(err))
    local values = {}
    for _, row in ipairs(result.tables[1].rows) do
      for j = 1, #row do
        if row[j] ~= la.null then values[#values + 1] = row[j] end
      end
    end
    local has = {}
    for _, v in ipairs(values) do
      assert.equals("float", math.type(v))
      has[v] = true
    end
    assert.is_true(has[2^63])
    assert.is_true(has[2^64])
    assert.is_true(has[math.huge])
  end)

  it("a dynamic value nested 10,000 deep arrives as its JSON text", function()
    local result, err = client:query("deep:10000")
    assert.is_table(result, tostring(err))
    local text
    for _, row in ipairs(result.tables[1].rows) do
      for j = 1, #row do
        if type(row[j]) == "string" and #row[j] > 10000 then text = row[j] end
      end
    end
    assert.is_string(text)
    local opens = select(2, text:gsub("[%[{]", ""))
    assert.equals(10000, opens)
    assert.equals(10000, select(2, text:gsub("[%]}]", "")))
  end)

  it("a 100 MB body streams through on_row in bounded memory", function()
    local rows = 0
    local before = collectgarbage("count")
    local peak = before
    local result, err = client:query("big:100", { on_row = function()
      rows = rows + 1
      if rows % 20000 == 0 then peak = math.max(peak, collectgarbage("count")) end
    end, workspace = "FAULTS" })
    assert.is_table(result, tostring(err))
    assert.is_true(rows > 150000, rows .. " rows")
    assert.equals(rows, result.tables[1].row_count)
    assert.is_true(peak - before < 64 * 1024, ("Lua heap grew %.0f KB"):format(peak - before))
  end)
end)

describe("TLS", function()
  local tls
  setup(function() tls = helper.get("/_test/tls") end)

  local function over(port, options)
    local o = { endpoint = "https://127.0.0.1:" .. port, workspace = "DEMO_WORKSPACE",
                api_key = "DEMO_KEY", max_retries = 0 }
    for k, v in pairs(options or {}) do o[k] = v end
    return la.new(o)
  end

  it("works with a certificate from the CA given by ca_file", function()
    local result, err = over(tls.good, { ca_file = tls.ca_file }):query("Heartbeat | take 1")
    assert.is_table(result, tostring(err))
  end)

  it("refuses an untrusted certificate", function()
    local result, err = over(tls.untrusted, { ca_file = tls.ca_file }):query("Heartbeat | take 1")
    assert.is_nil(result)
    assert.equals("network", err.kind)
    assert.matches("certificate", err.message:lower())
  end)

  it("refuses a certificate for another host name", function()
    local result, err = over(tls.wrong_host, { ca_file = tls.ca_file }):query("Heartbeat | take 1")
    assert.is_nil(result)
    assert.equals("network", err.kind)
  end)

  it("skips verification only when asked, and says so through the logger", function()
    local lines = {}
    local client = over(tls.untrusted, { verify_tls = false,
      log = function(level, message) lines[#lines + 1] = level .. " " .. message end })
    local result, err = client:query("Heartbeat | take 1")
    assert.is_table(result, tostring(err))
    assert.matches("^warn TLS verification is off", lines[1])
  end)
end)

describe("proxy", function()
  it("sends the query through the proxy given (here a closed port: the query fails)", function()
    local port = helper.closed_port()
    local _, err = helper.client { proxy = "http://127.0.0.1:" .. port }:query("Heartbeat | take 1")
    assert.equals("network", err.kind)
    assert.matches(tostring(port), err.message, 1, true)
    assert.is_table((helper.client():query("Heartbeat | take 1")))
  end)
end)

describe("the log hook", function()
  it("receives request lines, timings and retries, with the key redacted", function()
    local lines = {}
    local client = faulty { max_retries = 1, api_key_in = "query",
      log = function(level, message) lines[#lines + 1] = level .. " " .. message end }
    assert.is_table((client:query("flaky:log:1:503")))
    local text = table.concat(lines, "\n")
    assert.matches("debug POST http://127.0.0.1:%d+/v1/workspaces/FAULTS/query%?api_key=REDACTED", text)
    assert.matches("info POST [^\n]+: HTTP 503 in %d+%.%d+ s", text)
    assert.matches("warn retry 1 of 1 in [%d.]+ s after HTTP 503", text)
    assert.matches("info POST [^\n]+: HTTP 200 in", text)
    assert.is_nil(text:find("DEMO_KEY", 1, true))
  end)

  it("cannot break a query by raising", function()
    local client = helper.client { log = function() error("logger bug") end }
    assert.is_table((client:query("Heartbeat | take 1")))
  end)
end)
