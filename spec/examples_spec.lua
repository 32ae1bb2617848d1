-- Every example of examples/ (README, "Examples"), run as its user would:
-- a separate lua5.4 process with the local server's address in
-- LOGANALYTICS_ENDPOINT (the command's variables: LOGANALYTICS_WORKSPACE and
-- LOGANALYTICS_API_KEY too; AZURE_AUTHORITY_HOST for the identity
-- provider), checked on what it really prints: rows, the
-- partial-result message, the exact CSV bytes, its exit status. The
-- OpenResty example runs in the real nginx with the endpoint given through
-- the environment. Nothing here leaves 127.0.0.1.
local helper = require "helper"
local la = require "loganalytics"

local shell_quote = helper.shell_quote

-- Each example and where it is checked: a new example without a spec fails.
local COVERED = {
  ["demo.lua"] = "here", ["service_principal.lua"] = "here", ["partial_result.lua"] = "here",
  ["export_csv.lua"] = "here", ["openresty"] = "here (and spec/nginx_spec.lua)",
  ["last_24h.lua"] = "here", ["run_demo.sh"] = "here",
}

local function temp_name()
  local name = os.tmpname()
  os.remove(name)
  return name
end

-- Runs `lua5.4 [prelude] examples/NAME args...` with only PATH, the
-- checkout's module paths and `env`. Returns the exit status, standard
-- output and standard error (bytes, separately).
local function run_example(name, args, env, prelude)
  local vars = {
    "PATH=" .. shell_quote(os.getenv("PATH")),
    "LUA_PATH=" .. shell_quote("lua/?.lua;lua/?/init.lua;;"),
    "LUA_CPATH=" .. shell_quote(helper.build_dir .. "/?.so;;"),
  }
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. shell_quote(v) end
  local quoted = {}
  for i, a in ipairs(args or {}) do quoted[i] = shell_quote(a) end
  local out, err = temp_name(), temp_name()
  local command = ("env -i %s lua5.4 %s examples/%s %s > %s 2> %s; echo $?"):format(
    table.concat(vars, " "), prelude and ("-e " .. shell_quote(prelude)) or "", name,
    table.concat(quoted, " "), out, err)
  local pipe = assert(io.popen(command))
  local status = tonumber(pipe:read("*a"):match("%d+"))
  pipe:close()
  local stdout, stderr = helper.read_file(out), helper.read_file(err)
  os.remove(out)
  os.remove(err)
  return status, stdout, stderr
end

local function local_server(extra)
  local env = { LOGANALYTICS_ENDPOINT = helper.endpoint() }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

local function lines(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

describe("examples/", function()
  it("are each checked by a spec", function()
    local pipe = assert(io.popen("ls examples"))
    for name in pipe:lines() do
      assert.is_truthy(COVERED[name], "examples/" .. name .. " has no spec: add it to spec/examples_spec.lua")
    end
    pipe:close()
  end)
end)

describe("examples/demo.lua", function()
  it("prints typed rows of the demo workspace, by name too, and a service error", function()
    local status, out, err = run_example("demo.lua", {}, local_server())
    assert.equals(0, status, err)
    assert.equals("", err)
    local l = lines(out)
    assert.equals("> Heartbeat | summarize count() by Computer | top 5 by count_", l[2])
    assert.equals("  Computer    count_", l[3])
    assert.equals("  string      long  ", l[4])
    assert.equals("  WIN-SRV-01  100   ", l[5])
    assert.is_truthy(out:find("\n  first row by name: Microsoft.Web/sites/restart/action took 708014908613 ms "
      .. "(Lua number integer)\n", 1, true), out)
    assert.is_truthy(out:find("\n  Perf      0.789282  true      \n", 1, true), out)
    assert.is_truthy(out:find("\n> completely invalid syntax\n  error: loganalytics: service error "
      .. "(HTTP 400 BadArgumentError): ", 1, true), out)
  end)

  it("asks for LOGANALYTICS_ENDPOINT rather than guess one", function()
    local status, out, err = run_example("demo.lua", {}, {})
    assert.equals(2, status)
    assert.equals("", out)
    assert.matches("set LOGANALYTICS_ENDPOINT", err)
  end)
end)

describe("examples/run_demo.sh", function()
  it("starts a server of its own and runs the example given, endpoint and module paths set", function()
    -- (the exit status read from the shell: Lua 5.1's pipe:close does not give it)
    local _, out = helper.run("(LOGANALYTICS_WORKSPACE=FIXTURES sh examples/run_demo.sh examples/partial_result.lua partial; echo \"exit $?\")")
    assert.matches("\nexit 4\n$", out)  -- a partial result
    assert.matches("^local Log Analytics server on http://127%.0%.0%.1:%d+\n", out)
    assert.is_truthy(out:find("web-01\t120\n", 1, true), out)
  end)
end)

describe("examples/service_principal.lua", function()
  local identity = {
    AZURE_TENANT_ID = "TEST_TENANT", AZURE_CLIENT_ID = "TEST_CLIENT", AZURE_CLIENT_SECRET = "TEST_SECRET",
  }
  local function env(overrides)
    local e = local_server { AZURE_AUTHORITY_HOST = helper.endpoint() }
    for k, v in pairs(identity) do e[k] = v end
    for k, v in pairs(overrides or {}) do e[k] = v ~= false and v or nil end
    return e
  end

  before_each(function() helper.configure_identity('{"reset": true}') end)

  it("gets one token from the identity provider and queries twice with it", function()
    local status, out, err = run_example("service_principal.lua", {}, env())
    assert.equals(0, status, err)
    assert.equals("", err)
    local l = lines(out)
    assert.matches("^token for https://api%.loganalytics%.io/%.default, valid until %d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", l[1])
    assert.same({
      "",
      "> Heartbeat | summarize count() by Computer | top 5 by count_",
      "Computer\tcount_",
      "WIN-SRV-01\t100", "lnx-app-02\t100", "lnx-app-03\t100", "WIN-SRV-04\t100", "lnx-app-05\t100",
      "(5 rows)",
      "",
      "> Usage | where IsBillable == true | summarize count() by DataType | top 3 by count_",
      "DataType\tcount_",
      -- (the query asks for the last day: one Usage row an hour of each type)
      "Perf\t24", "Syslog\t24", "Event\t24",
      "(3 rows)",
    }, { select(2, (table.unpack or unpack)(l)) })
    assert.equals(1, helper.identity().token_requests)
  end)

  it("runs the query it is given", function()
    local status, out, err = run_example("service_principal.lua", { "Heartbeat | count" }, env())
    assert.equals(0, status, err)
    assert.is_truthy(out:find("\n> Heartbeat | count\nCount\n2000\n(1 rows)\n", 1, true), out)
  end)

  it("says why when the secret is wrong (exit 3), without the secret", function()
    local status, out, err = run_example("service_principal.lua", {}, env { AZURE_CLIENT_SECRET = "WRONG_SECRET_1234" })
    assert.equals(3, status)
    assert.equals("", out)
    assert.matches("^service_principal: no token: loganalytics: auth error %(HTTP 401 invalid_client%): "
      .. "client_secret: AADSTS7000215: Invalid client secret provided", err)
    assert.is_nil(err:find("WRONG_SECRET_1234", 1, true))
  end)

  it("never assumes the Azure hosts: without AZURE_AUTHORITY_HOST it stops (exit 2)", function()
    local status, out, err = run_example("service_principal.lua", {}, env { AZURE_AUTHORITY_HOST = false })
    assert.equals(2, status)
    assert.equals("", out)
    assert.equals("service_principal: set AZURE_AUTHORITY_HOST\n", err)
    assert.equals(0, helper.identity().token_requests)
  end)
end)

describe("examples/partial_result.lua", function()
  it("keeps the rows of a partial result, says why on stderr and exits 4", function()
    local status, out, err = run_example("partial_result.lua", { "partial" }, local_server { LOGANALYTICS_WORKSPACE = "FIXTURES" })
    assert.equals(4, status, err)
    assert.equals("Computer\tcount_\nweb-01\t120\nweb-02\t98\n", out)
    assert.equals(
      "partial_result: PARTIAL result, 2 rows kept: loganalytics: service error (HTTP 200 PartialError): "
      .. "There were some errors when processing your query.\n"
      .. "  EngineError: Query result set has exceeded the internal data size limit 64000000 bytes "
      .. "(E_QUERY_RESULT_SET_TOO_LARGE).\n"
      .. "  the result was cut at the service's size limit: narrow the query (a shorter\n"
      .. "  timespan, fewer columns, a summarize) or page it, rather than use these rows as all\n"
      .. "  correlation id for a support request: b2a4f1e0-4d5c-4a8e-9a6b-7f1f2d3c4b5a\n", err)
  end)

  it("says a complete result is complete (exit 0)", function()
    local status, out, err = run_example("partial_result.lua", {}, local_server())
    assert.equals(0, status, err)
    -- the day's rows (timespan P1D) of the 7 days of AzureActivity
    assert.equals("Category\tcount_\nAdministrative\t274\nPolicy\t35\nAlert\t37\nResourceHealth\t44\nSecurity\t42\n", out)
    assert.equals("partial_result: complete, 5 rows\n", err)
  end)

  it("tells a failure from a partial result (exit 1)", function()
    local status, out, err = run_example("partial_result.lua", { "completely invalid syntax" }, local_server())
    assert.equals(1, status)
    assert.equals("", out)
    assert.matches("^partial_result: loganalytics: service error %(HTTP 400 BadArgumentError%)", err)
  end)
end)

describe("examples/export_csv.lua", function()
  local function export(kql, workspace)
    return run_example("export_csv.lua", { kql }, local_server { LOGANALYTICS_WORKSPACE = workspace })
  end

  it("writes RFC 4180 CSV of every column type: quoting, null apart from the empty string", function()
    local status, out, err = export("all_types", "FIXTURES")
    assert.equals(0, status, err)
    assert.equals(
      "b,i,l,r,dec,dt,ts,g,s,dyn\r\n"
      .. 'true,12,34,1.286,0.10101,2017-08-24T06:59:59Z,00:00:10,74be27de-1e4e-49d9-b579-fe0b331d3642,text,"{""k"":[1,2]}"\r\n'
      .. 'false,12,34,1.286,0.10101,2017-08-24T06:59:59.1234567Z,1.02:03:04.5,00000000-0000-0000-0000-000000000000,"",[]\r\n'
      .. ",,,,,,,,,\r\n", out)
    assert.equals("export_csv: 3 rows written to standard output\n", err)
  end)

  it("keeps quotes, commas, line breaks, unicode and NUL bytes exact", function()
    local status, out, err = export("escapes", "FIXTURES")
    assert.equals(0, status, err)
    assert.equals(
      "text,expected_hex\r\n"
      .. "caf\195\169,636166c3a9\r\n"
      .. "\240\159\152\128,f09f9880\r\n"
      .. '"a""b\\c/d",6122625c632f64\r\n'
      .. '"line\nbreak\ttab",6c696e650a627265616b09746162\r\n'
      .. "\228\184\173\230\150\135,e4b8ade69687\r\n"
      .. "nul\0byte,6e756c0062797465\r\n"
      .. "raw \195\169,72617720c3a9\r\n", out)
  end)

  it("writes reals that read back exactly, and 64-bit integers whole", function()
    local status, out, err = export("reals", "FIXTURES")
    assert.equals(0, status, err)
    assert.equals("value,label\r\nNaN,nan\r\nInfinity,inf\r\n-Infinity,-inf\r\n1.5,plain\r\n2.25,string-encoded\r\n"
      .. "3,integer text\r\n1e+308,big\r\n-1e-06,small\r\n,null\r\n", out)
    status, out, err = export("long_extremes", "FIXTURES")
    assert.equals(0, status, err)
    assert.equals("max,min,beyond_double,int_max,as_string,negative_string,exponent\r\n"
      .. "9223372036854775807,-9223372036854775808,9007199254740993,2147483647,9223372036854775807,-9007199254740993,1000\r\n"
      .. "0,-1,,-2147483648,42,,\r\n", out)
  end)

  it("writes the header alone for no rows", function()
    local status, out, err = export("AzureActivity | where Level == 'Nonexistent' | project Level, Caller", "DEMO_WORKSPACE")
    assert.equals(0, status, err)
    assert.equals("Level,Caller\r\n", out)
    assert.equals("export_csv: 0 rows written to standard output\n", err)
  end)

  it("writes a file holding the same rows client:query returns", function()
    local path = temp_name()
    local kql = "AzureActivity | take 500"
    local status, out, err = run_example("export_csv.lua", { kql, path }, local_server())
    assert.equals(0, status, err)
    assert.equals("", out)
    assert.equals("export_csv: 500 rows written to " .. path .. "\n", err)
    local csv = helper.read_file(path)
    os.remove(path)

    -- an RFC 4180 reader: records of fields; an unquoted empty field is nil
    local records, pos = {}, 1
    while pos <= #csv do
      local record, n = {}, 0
      repeat
        n = n + 1
        local value
        if csv:sub(pos, pos) == '"' then
          local parts = {}
          pos = pos + 1
          while true do
            local q = assert(csv:find('"', pos, true), "unterminated quoted field")
            parts[#parts + 1] = csv:sub(pos, q - 1)
            if csv:sub(q + 1, q + 1) == '"' then
              parts[#parts + 1] = '"'
              pos = q + 2
            else
              pos = q + 1
              break
            end
          end
          value = table.concat(parts)
        else
          local stop = csv:find("[,\r]", pos) or (#csv + 1)
          value = csv:sub(pos, stop - 1)
          assert.is_nil(value:find('[\n"]'), "a bare field holds a line break or quote")
          pos = stop
          if value == "" then value = nil end
        end
        record[n] = value
        local sep = csv:sub(pos, pos)
        pos = pos + 1
      until sep ~= ","
      assert.equals("\n", csv:sub(pos, pos), "a record ends with CRLF")
      pos = pos + 1
      records[#records + 1] = { n = n, fields = record }
    end

    local result = assert(helper.client():query(kql))
    local tbl = result.tables[1]
    assert.equals(#tbl.rows + 1, #records)
    for j, col in ipairs(tbl.columns) do assert.equals(col.name, records[1].fields[j]) end
    for r, row in ipairs(tbl.rows) do
      local rec = records[r + 1]
      assert.equals(#tbl.columns, rec.n)
      for j = 1, #tbl.columns do
        local v, expected = row[j], nil
        if v == la.null then
          expected = nil
        elseif math.type(v) == "integer" then
          expected = ("%d"):format(v)
        else
          expected = tostring(v)
        end
        assert.equals(expected, rec.fields[j], ("row %d, %s"):format(r, tbl.columns[j].name))
      end
    end
  end)

  it("streams: a 20 MB result passes through a process that stays small", function()
    -- the example's peak resident set, read from /proc at its exit
    local hwm_file = temp_name()
    local prelude = ([[
      local function record()
        local f = io.open("/proc/self/status")
        local kb = f and f:read("*a"):match("VmHWM:%%s*(%%d+) kB")
        if f then f:close() end
        local out = io.open(%q, "w")
        out:write(kb or "?")
        out:close()
      end
      local exit = os.exit
      os.exit = function(...) record() return exit(...) end
      _G.__hwm = setmetatable({}, { __gc = record })
    ]]):format(hwm_file)
    local status, out, err = run_example("export_csv.lua", { "big:20", "/dev/null" },
                                         local_server { LOGANALYTICS_WORKSPACE = "FAULTS" }, prelude)
    assert.equals(0, status, err)
    assert.equals("", out)
    local rows = tonumber(err:match("^export_csv: (%d+) rows written to /dev/null\n$"))
    assert.is_truthy(rows, err)
    -- the rows the server sent (its x-test-rows header; read by curl, not
    -- parsed here, which under valgrind would take long)
    local pipe = assert(io.popen(("curl -s -D - -o /dev/null -H 'X-Api-Key: DEMO_KEY' "
      .. "-H 'Content-Type: application/json' --data '{\"query\":\"big:20\"}' %s/v1/workspaces/FAULTS/query")
      :format(helper.endpoint())))
    local headers = pipe:read("*a")
    pipe:close()
    local sent = tonumber(headers:match("\n[Xx]%-[Tt]est%-[Rr]ows: *(%d+)"))
    assert.is_truthy(sent, headers)
    assert.equals(sent, rows)
    assert.is_true(rows > 10000, tostring(rows))
    local kb = tonumber(helper.read_file(hwm_file))
    os.remove(hwm_file)
    assert.is_truthy(kb, "no VmHWM recorded")
    -- streamed: about 13 MB whatever the size; the rows held would take 48 MB
    assert.is_true(kb < 30 * 1024, ("peak resident set %d kB"):format(kb))
  end)

  it("writes the rows of a partial result, then says it is partial (exit 4)", function()
    local status, out, err = export("partial", "FIXTURES")
    assert.equals(4, status, err)
    assert.equals("Computer,count_\r\nweb-01,120\r\nweb-02,98\r\n", out)
    assert.matches("^export_csv: 2 rows written to standard output\nexport_csv: PARTIAL result, the rows above "
      .. "are not all: loganalytics: service error %(HTTP 200 PartialError%)", err)
  end)

  it("fails cleanly: a service error (exit 1), no query (exit 2)", function()
    local status, out, err = export("completely invalid syntax", "DEMO_WORKSPACE")
    assert.equals(1, status)
    assert.equals("", out)
    assert.matches("^export_csv: loganalytics: service error %(HTTP 400 BadArgumentError%)", err)
    status, out, err = run_example("export_csv.lua", {}, local_server())
    assert.equals(2, status)
    assert.equals("", out)
    assert.matches("^usage: ", err)
  end)
end)

describe("examples/openresty", function()
  local port, stop

  local function get(path)
    local pipe = assert(io.popen(("curl -s -w '\\n%%{http_code}' 'http://127.0.0.1:%d%s'"):format(port, path)))
    local text = pipe:read("*a")
    pipe:close()
    local body, status = text:match("^(.*)\n(%d+)$")
    return body, tonumber(status)
  end

  setup(function()
    -- the example's nginx.conf as it is (helper: this checkout's paths, a
    -- free port, its own pid file); the endpoint comes from
    -- LOGANALYTICS_ENDPOINT, nginx.conf names no host
    port, _, stop = helper.start_example_nginx(function(conf)
      assert.is_truthy(conf:find('set $la_endpoint "";', 1, true))
      -- were LOGANALYTICS_ENDPOINT not read, the queries would go to a
      -- closed local port
      return (conf:gsub('set %$la_endpoint "[^"]*";',
                        'set $la_endpoint "http://127.0.0.1:' .. helper.closed_port() .. '";'))
    end, "env LOGANALYTICS_ENDPOINT=" .. shell_quote(helper.endpoint()))
  end)

  teardown(function()
    stop()
  end)

  it("serves query rows as JSON from the endpoint in LOGANALYTICS_ENDPOINT", function()
    local body, status = get("/query?kql=Heartbeat%20%7C%20summarize%20count()%20by%20Computer%20%7C%20top%202%20by%20count_")
    assert.equals(200, status, body)
    local doc = require("loganalytics.core").decode_json(body)
    assert.equals("success", doc.status)
    local rows = doc.tables[1].rows
    assert.same({ { "WIN-SRV-01", 100 }, { "lnx-app-02", 100 } }, rows)
  end)

  it("answers a service error with its kind and code", function()
    local body, status = get("/query?kql=completely%20invalid%20syntax")
    assert.equals(400, status, body)
    local doc = require("loganalytics.core").decode_json(body)
    assert.equals("service", doc.kind)
    assert.equals("BadArgumentError", doc.code)
  end)
end)

describe("examples/openresty without an endpoint", function()
  local port, stop

  setup(function()
    -- nginx.conf as it is, and no LOGANALYTICS_ENDPOINT in nginx's environment
    port, _, stop = helper.start_example_nginx(nil, "env -u LOGANALYTICS_ENDPOINT")
  end)

  teardown(function()
    stop()
  end)

  it("answers 500 naming LOGANALYTICS_ENDPOINT instead of querying a host it was not given", function()
    local pipe = assert(io.popen(("curl -s -w '\\n%%{http_code}' 'http://127.0.0.1:%d/query?kql=Heartbeat'"):format(port)))
    local text = pipe:read("*a")
    pipe:close()
    local body, status = text:match("^(.*)\n(%d+)$")
    assert.equals("500", status, text)
    assert.matches("set LOGANALYTICS_ENDPOINT", body)
  end)
end)

describe("examples/last_24h.lua", function()
  local function env(overrides)
    local e = local_server {
      LOGANALYTICS_WORKSPACE = "DEMO_WORKSPACE", AZURE_AUTHORITY_HOST = helper.endpoint(),
      AZURE_TENANT_ID = "TEST_TENANT", AZURE_CLIENT_ID = "TEST_CLIENT", AZURE_CLIENT_SECRET = "TEST_SECRET",
    }
    for k, v in pairs(overrides or {}) do e[k] = v ~= false and v or nil end
    return e
  end

  before_each(function() helper.configure_identity('{"reset": true}') end)

  it("prints the total the service counted for the last 24 hours, then the newest 100 rows", function()
    local status, out, err = run_example("last_24h.lua", { "AzureActivity" }, env())
    assert.equals(0, status, err)
    assert.equals("", err)
    local l = lines(out)
    -- the local server keeps 3000 AzureActivity rows over 7 days; 432 in the
    -- day before its clock (2026-01-01T00:00:00Z): a count, not #rows
    assert.equals("Total records: 432", l[1])
    assert.equals("Newest 100:", l[2])
    assert.matches("^TimeGenerated\tOperationName\t", l[3])
    assert.equals(103, #l)
    -- newest first, and all within the day
    assert.is_true(l[4]:match("^(%S+)") >= l[103]:match("^(%S+)"))
    assert.is_true(l[103]:match("^(%S+)") >= "2025-12-31T00:00:00")
    assert.equals(1, helper.identity().token_requests)
  end)

  it("counts what the table holds when it holds fewer than 100 rows a day", function()
    local status, out, err = run_example("last_24h.lua", {}, env())   -- Heartbeat: 2000 rows in 100 minutes
    assert.equals(0, status, err)
    assert.equals("Total records: 2000\nNewest 100:\n", out:match("^[^\n]*\n[^\n]*\n"))
  end)

  it("never assumes the Azure hosts or a workspace (exit 2, nothing sent)", function()
    for _, missing in ipairs { "LOGANALYTICS_ENDPOINT", "LOGANALYTICS_WORKSPACE", "AZURE_AUTHORITY_HOST" } do
      local status, out, err = run_example("last_24h.lua", {}, env { [missing] = false })
      assert.equals(2, status, err)
      assert.equals("", out)
      assert.equals("last_24h: set " .. missing .. "\n", err)
    end
    assert.equals(0, helper.identity().token_requests)
  end)
end)

describe("every example", function()
  local QUERYING = { "demo.lua", "export_csv.lua", "partial_result.lua", "service_principal.lua", "last_24h.lua" }

  it("reads the command's variables, not others of its own", function()
    for _, name in ipairs(QUERYING) do
      local text = helper.read_file("examples/" .. name)
      assert.is_truthy(text:find('os.getenv("LOGANALYTICS_ENDPOINT")', 1, true)
        or text:find('need("LOGANALYTICS_ENDPOINT")', 1, true), name)
      for var in text:gmatch('getenv%("([%w_]+)"%)') do
        assert.is_truthy(var:find("^LOGANALYTICS_") or var:find("^AZURE_"), name .. " reads " .. var)
      end
    end
  end)

  it("stops with exit 2 naming LOGANALYTICS_ENDPOINT when it is not set, whatever else is", function()
    for _, name in ipairs(QUERYING) do
      local args = name ~= "last_24h.lua" and { "Heartbeat | count" } or {}
      local status, out, err = run_example(name, args, {
        LOGANALYTICS_WORKSPACE = "DEMO_WORKSPACE", LOGANALYTICS_API_KEY = "DEMO_KEY",
        AZURE_AUTHORITY_HOST = helper.endpoint(), AZURE_TENANT_ID = "TEST_TENANT",
        AZURE_CLIENT_ID = "TEST_CLIENT", AZURE_CLIENT_SECRET = "TEST_SECRET",
      })
      assert.equals(2, status, name .. ": " .. err)
      assert.equals("", out, name)
      assert.matches("LOGANALYTICS_ENDPOINT", err, nil, nil, name)
    end
  end)

  it("sends LOGANALYTICS_API_KEY as the key", function()
    local status, out, err = run_example("export_csv.lua", { "Heartbeat | count" },
      local_server { LOGANALYTICS_API_KEY = "NOT_THE_KEY" })
    assert.equals(1, status, err)
    assert.equals("", out)
    assert.matches("^export_csv: loganalytics: auth error", err)
  end)
end)

describe("the local server's demo workspace", function()
  -- its clock stands at 2026-01-01T00:00:00Z (server/la_server.py, ANCHOR)
  local function count(kql, timespan)
    local result = assert(helper.client():query(kql, { timespan = timespan }))
    return result.tables[1].rows[1].Count
  end

  it("keeps only the rows of the timespan, as the service does", function()
    assert.equals(3000, count("AzureActivity | count"))
    assert.equals(432, count("AzureActivity | count", "P1D"))
    assert.equals(22, count("AzureActivity | count", "PT1H"))
    assert.equals(3000, count("AzureActivity | count", "P7D"))
    assert.equals(240, count("Usage | count", 86400))
    assert.equals(432, count("AzureActivity | count", "2025-12-31T00:00:00Z/2026-01-01T00:00:00Z"))
    assert.equals(432, count("AzureActivity | count", "2025-12-31T00:00:00Z/P1D"))
    assert.equals(600, count("Heartbeat | count", "PT30M/2026-01-01T00:00:00+01:00"))
    assert.equals(0, count("Heartbeat | count", "2026-01-02T00:00:00Z/2026-01-03T00:00:00Z"))
  end)
end)
