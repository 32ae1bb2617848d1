-- The real nginx with Debian's Lua module, one worker, running
-- examples/openresty/ (its nginx.conf with this run's ports and paths):
-- queries go through loganalytics.nginx into the thread pool, and the
-- event loop keeps answering /ping while slow queries are in flight.
local helper = require "helper"
local core = require "loganalytics.core"

local function get(url)
  local pipe = io.popen(("curl -s -w '\\n%%{http_code} %%{time_total}' '%s'"):format(url))
  local out = pipe:read("*a")
  pipe:close()
  local body, status, seconds = out:match("^(.*)\n(%d+) ([%d.]+)$")
  return body, tonumber(status), tonumber(seconds)
end

describe("nginx", function()
  local prefix, port, stop

  setup(function()
    -- the example pointed at the local server, plus a location querying with
    -- a credential whose tokens live in a shared dict
    port, prefix, stop = helper.start_example_nginx(function(conf)
      return (conf
        :gsub('set %$la_endpoint "[^"]*";', 'set $la_endpoint "' .. helper.endpoint() .. '";')
        :gsub("    access_log off;", [[
    access_log off;
    lua_shared_dict la_tokens 1m;]])
        :gsub("        location = /ping", [[
        location = /cred {
            content_by_lua_block {
                local lan = require "loganalytics.nginx"
                local result, err = lan.query({
                    endpoint = ngx.var.la_endpoint, workspace = "DEMO_WORKSPACE",
                    credential = { type = "client_secret", tenant = "TEST_TENANT",
                                   client_id = "TEST_CLIENT", client_secret = "TEST_SECRET",
                                   authority_host = ngx.var.la_endpoint },
                    token_cache = "la_tokens", max_retries = tonumber(ngx.var.arg_retries),
                }, "Heartbeat | take 2")
                if not result then ngx.status = 500 ngx.say(tostring(err)) return end
                ngx.say(#result.tables[1].rows, " ", result.tables[1].rows[1].Computer)
            }
        }
        location = /columns {
            content_by_lua_block {
                local lan = require "loganalytics.nginx"
                local result, err = lan.query({
                    endpoint = ngx.var.la_endpoint, workspace = "DEMO_WORKSPACE",
                    api_key = ngx.var.la_api_key,
                }, "Heartbeat | take 3", { shape = "columns" })
                if not result then ngx.status = 500 ngx.say(tostring(err)) return end
                local tbl, cells = result.tables[1], {}
                for j, col in ipairs(tbl.values) do
                    assert(type(col) == "table" and col == tbl.columns[j].values and #col == 3)
                    for i = 1, 3 do cells[#cells + 1] = tostring(col[i]) end
                end
                ngx.say(tostring(tbl.rows), " ", table.concat(cells, ","))
            }
        }
        location = /flush_tokens {
            content_by_lua_block { ngx.shared.la_tokens:flush_all() ngx.say("flushed") }
        }
        location = /ping]]))
    end)
  end)

  teardown(function()
    stop()
  end)

  it("serves query rows through the thread pool, the same as client:query", function()
    local body, status = get("http://127.0.0.1:" .. port .. "/query?kql=Heartbeat%20%7C%20take%203")
    assert.equals(200, status, body)
    local doc = core.decode_json(body)
    local direct = assert(helper.client():query("Heartbeat | take 3"))
    assert.equals("success", doc.status)
    assert.equals(3, #doc.tables[1].rows)
    for r = 1, 3 do
      for j, col in ipairs(direct.tables[1].columns) do
        assert.equals(direct.tables[1].rows[r][j], doc.tables[1].rows[r][j], col.name)
      end
    end
  end)

  it("puts ?computer= into the query only as one KQL string literal (la.kql.format)", function()
    -- were it pasted, `take 1` would run and the comment hide the rest: one row
    local hostile = 'WIN-SRV-01" | take 1 // \\ \n\' h"'
    local encoded = hostile:gsub("[^%w%-_.~]", function(c) return ("%%%02X"):format(c:byte()) end)
    local body, status = get("http://127.0.0.1:" .. port .. "/query?computer=" .. encoded)
    assert.equals(200, status, body)
    local query = helper.last_request().json.query
    assert.equals(require("loganalytics").kql.format(
      "Heartbeat | where Computer == {1} | top 10 by TimeGenerated desc", hostile), query)
    assert.equals(0, #core.decode_json(body).tables[1].rows, "the value broke out of its literal")
  end)

  it("gives shape = \"columns\" as plain arrays, the same cells as client:query", function()
    local body, status = get("http://127.0.0.1:" .. port .. "/columns")
    assert.equals(200, status, body .. helper.read_file(prefix .. "/logs/out.log"))
    local direct = assert(helper.client():query("Heartbeat | take 3", { shape = "columns" })).tables[1]
    local cells = {}
    for j = 1, #direct.values do
      for i = 1, 3 do cells[#cells + 1] = tostring(direct.values[j][i]) end
    end
    assert.equals("nil " .. table.concat(cells, ","), body:gsub("\n$", ""))
  end)

  it("queries with a credential, one token for every thread through the shared dict", function()
    helper.configure_identity('{"reset": true}')
    local base = "http://127.0.0.1:" .. port
    local body, status = get(base .. "/cred")
    assert.equals(200, status, body)
    assert.equals("2 WIN-SRV-01\n", body)
    -- four at once: other thread VMs, the same token
    local out = os.tmpname()
    os.execute(("for i in 1 2 3 4; do curl -s -w ' %%{http_code}\n' '%s/cred' >> %s & done; wait"):format(base, out))
    local lines = helper.read_file(out)
    os.remove(out)
    -- (the four curls write into one file: bodies and statuses may interleave)
    assert.equals(4, select(2, lines:gsub("2 WIN%-SRV%-01\n", "")), lines)
    assert.equals(4, select(2, lines:gsub(" 200\n", "")), lines)
    assert.equals(1, helper.identity().token_requests)
  end)

  it("fetches one token when many queries start at once with none cached", function()
    local base = "http://127.0.0.1:" .. port
    -- each token answer takes half a second, so the four queries all find the cache empty
    helper.configure_identity('{"reset": true, "token_delay_ms": 500}')
    assert.equals(200, select(2, get(base .. "/flush_tokens")))
    -- (retries=2: other client options, so a new client and credential in every thread VM)
    local out = os.tmpname()
    os.execute(("for i in 1 2 3 4; do curl -s -w ' %%{http_code}\n' '%s/cred?retries=2' >> %s & done; wait")
      :format(base, out))
    local lines = helper.read_file(out)
    os.remove(out)
    helper.configure_identity('{"token_delay_ms": 0}')
    assert.equals(4, select(2, lines:gsub("2 WIN%-SRV%-01\n", "")), lines)
    assert.equals(4, select(2, lines:gsub(" 200\n", "")), lines)
    assert.equals(1, helper.identity().token_requests)
  end)

  it("renews the shared token at the credential's refresh time (refresh_in), not 5 minutes before expiry", function()
    local base = "http://127.0.0.1:" .. port
    helper.configure_identity('{"reset": true, "expires_in": 3600, "refresh_in": 2}')
    assert.equals(200, select(2, get(base .. "/flush_tokens")))
    local body, status = get(base .. "/cred?retries=1")
    assert.equals(200, status, body)
    local first = helper.last_request().headers.authorization
    assert.equals(1, helper.identity().token_requests)
    os.execute("sleep 3.2")
    body, status = get(base .. "/cred?retries=1")
    assert.equals(200, status, body)
    helper.configure_identity('{"refresh_in": null}')
    assert.are_not.equal(first, helper.last_request().headers.authorization)
    assert.equals(2, helper.identity().token_requests)
  end)

  it("decodes a large body on the module's second thread inside nginx's thread pool", function()
    -- 20,000 rows, 0.5 MB gzipped: past the threshold where a worker thread decodes
    local body, status = get("http://127.0.0.1:" .. port .. "/query?kql=large&workspace=FIXTURES")
    assert.equals(200, status, helper.read_file(prefix .. "/logs/out.log") .. body)
    local doc = core.decode_json(body)
    local direct = assert(helper.client():query("large", { workspace = "FIXTURES" })).tables[1].rows
    local rows = doc.tables[1].rows
    assert.equals(20000, #rows)
    for _, r in ipairs { 1, 7777, 20000 } do
      for _, j in ipairs { 1, 2, 3, 7, 8 } do  -- the text columns (cjson rounds longs)
        assert.equals(direct[r][j], rows[r][j], ("row %d column %d"):format(r, j))
      end
    end
    -- the handler spells a real NaN as the service does
    local nan_row
    for r, row in ipairs(direct) do
      if row.Ratio ~= row.Ratio then nan_row = r break end
    end
    assert.equals("NaN", rows[nan_row][5])
  end)

  it("gives the service's errors", function()
    local body, status = get("http://127.0.0.1:" .. port .. "/query?kql=completely%20invalid%20syntax")
    assert.equals(400, status)
    local doc = core.decode_json(body)
    assert.equals("service", doc.kind)
    assert.equals("BadArgumentError", doc.code)
  end)

  it("gives no secret when a server quotes the request back", function()
    for _, echo in ipairs { "html404", "gateway502", "json400", "text401" } do
      local body, status = get("http://127.0.0.1:" .. port .. "/query?workspace=ECHO&kql=" .. echo)
      assert.is_true(status >= 400, body)
      assert.matches("[REDACTED]", body, 1, true)
      assert.not_matches("DEMO_KEY", body, 1, true)
    end
  end)

  it("keeps answering /ping in under 50 ms while slow queries are in flight", function()
    local base = "http://127.0.0.1:" .. port
    local started = core.now()
    -- four queries that each take a second on the server, at once
    local out = os.tmpname()
    os.execute(("for i in 1 2 3 4; do curl -s -o /dev/null -w '%%{http_code} %%{time_total}\\n' "
      .. "'%s/query?workspace=FAULTS&kql=slow_headers%%3A1' >> %s & done"):format(base, out))
    os.execute("sleep 0.3")
    local worst = 0
    for _ = 1, 5 do
      local _, status, seconds = get(base .. "/ping")
      assert.equals(200, status)
      worst = math.max(worst, seconds)
    end
    assert.is_true(worst < 0.05, ("/ping took %.3f s"):format(worst))
    -- the slow queries all finish, together, in about one second
    for _ = 1, 60 do
      if select(2, helper.read_file(out):gsub("\n", "")) >= 4 then break end
      os.execute("sleep 0.1")
    end
    local finished = helper.read_file(out)
    os.remove(out)
    local count = 0
    for status in finished:gmatch("(%d+) [%d.]+") do
      assert.equals("200", status)
      count = count + 1
    end
    assert.equals(4, count)
    assert.is_true(core.now() - started < 3.5, "the four queries took " .. (core.now() - started) .. " s")
  end)
end)
