-- The `loganalytics` command, installed by `luarocks make` into a temporary
-- tree (once for this file) and run from there against the local server:
-- the exact bytes of every output format, the query sources, the exit
-- codes, authentication, the request it sends, and, on a real terminal
-- (tmux), the spinner and the table fitted to the width. Also the
-- on_progress query option the spinner runs on.
local helper = require "helper"

local quote = helper.shell_quote

local work = os.tmpname()
local command  -- <tree>/bin/loganalytics

local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- Runs the installed command with `args` (shell words), only `env` in its
-- environment (plus PATH), standard input from `stdin` (text) or
-- /dev/null. Returns the exit code, standard output, standard error.
local function cli(args, env, stdin)
  local out, err, input = work .. "/stdout", work .. "/stderr", work .. "/stdin"
  write(input, stdin or "")
  local vars = { "PATH=" .. quote(os.getenv("PATH")) }
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. quote(v) end
  local pipe = assert(io.popen(("env -i %s %s %s <%s >%s 2>%s; echo $?")
    :format(table.concat(vars, " "), command, args, input, out, err)))
  local code = tonumber(pipe:read("*a"):match("(%d+)%s*$"))
  pipe:close()
  return code, read(out), read(err)
end

-- The command on the local server's workspace `ws` with the demo key.
local function on(ws, args, env, stdin)
  return cli(("--endpoint %s -w %s --api-key DEMO_KEY %s"):format(helper.endpoint(), ws, args), env, stdin)
end

local function crlf(lines) return table.concat(lines, "\r\n") .. "\r\n" end
local function lf(lines) return table.concat(lines, "\n") .. "\n" end

setup(function()
  -- build from a copy, so the rock's object files stay out of the checkout
  os.remove(work)
  assert(helper.run(("mkdir -p %s && cp -r CMakeLists.txt src lua rockspec bin %s/"):format(work, work)))
  local ok, output = helper.run(("cd %s && luarocks --lua-version=5.4 make rockspec/loganalytics-scm-1.rockspec --tree=%s/tree")
    :format(work, work))
  assert(ok, output)
  command = work .. "/tree/bin/loganalytics"
  assert(io.open(command, "r"), "luarocks did not install " .. command)
end)

teardown(function()
  helper.run("rm -rf " .. work)
end)

describe("the loganalytics command's formats", function()
  -- spec/fixtures/cli_cells.json: nulls, quotes, commas, line breaks, tabs,
  -- backslashes, UTF-8, longs at the 64-bit limits and beyond 2^53, reals
  -- that need 17 digits, NaN, infinities, -0, dynamic values of each shape
  it("writes csv by RFC 4180: CRLF, quoted fields, doubled quotes, null as empty", function()
    local code, out, err = on("FIXTURES", "-o csv cli_cells")
    assert.equals("", err)
    assert.equals(0, code)
    assert.equals(crlf {
      "id,text,flag,ratio,big,props",
      '1,plain,true,0.1,9223372036854775807,"{""a"":[1,2]}"',
      '2,"comma, here",false,1e-07,-9223372036854775808,"{""k"":""v, w""}"',
      '3,"quote ""q"" here",,NaN,,',
      '4,"line1\nline2",true,Infinity,9007199254740993,plain text',
      '5,tab\there\\back,false,-2.5,0,"[1,""x\\ny""]"',
      "6,café 中文 😀,true,1.0000000000000002,42,12.50",
      '7,"cr\r\nlf",,123456789.125,-1,true',
      "8,,false,-0,,",
    }, out)
  end)

  it("writes tsv with \\t \\n \\r \\\\ escaped and null as an empty field", function()
    local code, out = on("FIXTURES", "-o tsv cli_cells")
    assert.equals(0, code)
    assert.equals(lf {
      "id\ttext\tflag\tratio\tbig\tprops",
      '1\tplain\ttrue\t0.1\t9223372036854775807\t{"a":[1,2]}',
      '2\tcomma, here\tfalse\t1e-07\t-9223372036854775808\t{"k":"v, w"}',
      '3\tquote "q" here\t\tNaN\t\t',
      "4\tline1\\nline2\ttrue\tInfinity\t9007199254740993\tplain text",
      '5\ttab\\there\\\\back\tfalse\t-2.5\t0\t[1,"x\\\\ny"]',
      "6\tcafé 中文 😀\ttrue\t1.0000000000000002\t42\t12.50",
      "7\tcr\\r\\nlf\t\t123456789.125\t-1\ttrue",
      "8\t\tfalse\t-0\t\t",
    }, out)
  end)

  it("writes ndjson: one object per row, exact numbers, dynamic values as JSON", function()
    local code, out = on("FIXTURES", "-o ndjson cli_cells")
    assert.equals(0, code)
    assert.equals(lf {
      '{"id":1,"text":"plain","flag":true,"ratio":0.1,"big":9223372036854775807,"props":{"a":[1,2]}}',
      '{"id":2,"text":"comma, here","flag":false,"ratio":1e-07,"big":-9223372036854775808,"props":{"k":"v, w"}}',
      '{"id":3,"text":"quote \\"q\\" here","flag":null,"ratio":"NaN","big":null,"props":null}',
      '{"id":4,"text":"line1\\nline2","flag":true,"ratio":"Infinity","big":9007199254740993,"props":"plain text"}',
      '{"id":5,"text":"tab\\there\\\\back","flag":false,"ratio":-2.5,"big":0,"props":[1,"x\\ny"]}',
      '{"id":6,"text":"café 中文 😀","flag":true,"ratio":1.0000000000000002,"big":42,"props":12.50}',
      '{"id":7,"text":"cr\\r\\nlf","flag":null,"ratio":123456789.125,"big":-1,"props":true}',
      '{"id":8,"text":"","flag":false,"ratio":-0,"big":null,"props":""}',
    }, out)
  end)

  it("writes json: the tables with their columns, one row per line", function()
    local code, out = on("FIXTURES", "-o json cli_cells")
    assert.equals(0, code)
    assert.equals(lf {
      '{"tables":[{"name":"PrimaryResult","columns":[{"name":"id","type":"long"},{"name":"text","type":"string"},'
        .. '{"name":"flag","type":"bool"},{"name":"ratio","type":"real"},{"name":"big","type":"long"},'
        .. '{"name":"props","type":"dynamic"}],"rows":[',
      '[1,"plain",true,0.1,9223372036854775807,{"a":[1,2]}],',
      '[2,"comma, here",false,1e-07,-9223372036854775808,{"k":"v, w"}],',
      '[3,"quote \\"q\\" here",null,"NaN",null,null],',
      '[4,"line1\\nline2",true,"Infinity",9007199254740993,"plain text"],',
      '[5,"tab\\there\\\\back",false,-2.5,0,[1,"x\\ny"]],',
      '[6,"café 中文 😀",true,1.0000000000000002,42,12.50],',
      '[7,"cr\\r\\nlf",null,123456789.125,-1,true],',
      '[8,"",false,-0,null,""]',
      "]}]}",
    }, out)
  end)

  it("aligns the table format: numbers right, control characters escaped, null blank", function()
    local code, out = on("FIXTURES", "cli_cells")
    assert.equals(0, code)
    assert.equals(lf {
      "id  text            flag                ratio                   big  props",
      "--  --------------  -----  ------------------  --------------------  ------------",
      " 1  plain           true                  0.1   9223372036854775807  {\"a\":[1,2]}",
      " 2  comma, here     false               1e-07  -9223372036854775808  {\"k\":\"v, w\"}",
      " 3  quote \"q\" here                        NaN",
      " 4  line1\\nline2    true             Infinity      9007199254740993  plain text",
      " 5  tab\\there\\back  false                -2.5                     0  [1,\"x\\ny\"]",
      -- the CJK characters and the emoji take two columns each
      " 6  café 中文 😀    true   1.0000000000000002                    42  12.50",
      " 7  cr\\r\\nlf                    123456789.125                    -1  true",
      " 8                  false                  -0",
    }, out)
  end)

  it("cuts the widest columns to fit --width, each cut cell ending in an ellipsis", function()
    local code, out = on("FIXTURES", "--width 40 cli_cells")
    assert.equals(0, code)
    assert.equals(lf {
      "id  text    flag    ratio     big  props",
      "--  ------  -----  ------  ------  -----",
      " 1  plain   true      0.1  92233…  {\"a\"…",
      " 2  comma…  false   1e-07  -9223…  {\"k\"…",
      " 3  quote…            NaN",
      " 4  line1…  true   Infin…  90071…  plai…",
      " 5  tab\\t…  false    -2.5       0  [1,\"…",
      " 6  café …  true   1.000…      42  12.50",
      " 7  cr\\r\\…         12345…      -1  true",
      " 8          false      -0",
    }, out)
    -- a wide character that does not fit is left out whole
    code, out = on("FIXTURES", "--width 8 -o table escapes")
    assert.equals(0, code)
    assert.equals(lf {
      "te…  ex…", "---  ---", "ca…  63…", "😀   f0…", 'a"…  61…', "li…  6c…", "中…  e4…", "nu…  6e…", "ra…  72…",
    }, out)
  end)

  it("writes every table of a result, a blank line between them; a table with no rows keeps its header", function()
    local _, out = on("FIXTURES", "-o csv duplicate_names")
    assert.equals(crlf { "a", "1", "2", "", "b", "x" }, out)
    _, out = on("FIXTURES", "-o tsv empty_rows")
    assert.equals("TimeGenerated\tComputer\n", out)
    _, out = on("FIXTURES", "-o json empty_rows")
    assert.equals('{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},'
      .. '{"name":"Computer","type":"string"}],"rows":[]}]}\n', out)
    _, out = on("FIXTURES", "-o ndjson empty_rows")
    assert.equals("", out)
    _, out = on("FIXTURES", "empty_rows")
    assert.equals(lf { "TimeGenerated  Computer", "-------------  --------" }, out)
  end)

  it("streams a large result in csv: every row, in order", function()
    local code, out, err = on("FAULTS", "-o csv big:1")
    assert.equals("", err)
    assert.equals(0, code)
    -- the rows the server sends, from its x-test-rows header
    local pipe = assert(io.popen(("curl -s -D - -o /dev/null -H 'X-Api-Key: DEMO_KEY' "
      .. "-H 'Content-Type: application/json' --data '{\"query\":\"big:1\"}' %s/v1/workspaces/FAULTS/query")
      :format(helper.endpoint())))
    local rows = tonumber(pipe:read("*a"):lower():match("x%-test%-rows: (%d+)"))
    pipe:close()
    local i = -1
    for line in out:gmatch("(.-)\r\n") do
      if i == -1 then
        assert.equals("TimeGenerated,OperationName,Category,Level,ActivityStatus,Caller,CallerIpAddress,"
          .. "CorrelationId,ResourceGroup,ResourceProvider,SubscriptionId,DurationMs,Properties,Type", line)
      else
        -- row i's time has i % 1000 milliseconds (server/faults.py big_row)
        assert.equals(("%03d"):format(i % 1000), line:match("^%d+%-%d+%-%d+T%d+:%d+:%d+%.(%d%d%d)Z,"))
      end
      i = i + 1
    end
    assert.is_true(rows > 1000, tostring(rows))
    assert.equals(rows, i)
  end)
end)

describe("the loganalytics command's input", function()
  local expected = crlf { "Count", "2000" }

  it("takes the query as an argument, from @file, from standard input and from -", function()
    local code, out = on("DEMO_WORKSPACE", "-o csv 'Heartbeat | count'")
    assert.equals(0, code)
    assert.equals(expected, out)
    local file = work .. "/query.kql"
    write(file, "Heartbeat\n| count\n")
    code, out = on("DEMO_WORKSPACE", "-o csv @" .. file)
    assert.equals(0, code)
    assert.equals(expected, out)
    assert.equals("Heartbeat\n| count\n", helper.last_request().json.query)
    code, out = on("DEMO_WORKSPACE", "-o csv", nil, "Heartbeat | count\n")
    assert.equals(0, code)
    assert.equals(expected, out)
    code, out = on("DEMO_WORKSPACE", "-o csv -", nil, "Heartbeat | count")
    assert.equals(0, code)
    assert.equals(expected, out)
  end)

  it("sends the flags' options: timespan, workspaces, server timeout, statistics, render", function()
    local code, out, err = on("DEMO_WORKSPACE",
      "-o csv -t PT1H --workspaces 'ws-2, ws-3' --server-timeout 30 --statistics --render 'Heartbeat | count'")
    assert.equals(0, code)
    assert.equals("Count\r\n1200\r\n", out)   -- the last hour's heartbeats: 20 machines, one a minute
    local last = helper.last_request()
    assert.equals("PT1H", last.json.timespan)
    assert.same({ "ws-2", "ws-3" }, last.json.workspaces)
    assert.equals("wait=30,include-statistics=true,include-render=true", last.headers.prefer)
    assert.equals("loganalytics-cli/" .. require("loganalytics")._VERSION .. " ", last.headers["user-agent"]:sub(1, 23))
    -- statistics and render go to standard error, one JSON line each
    assert.equals(lf {
      'statistics: {"query":{"datasetStatistics":[{"tableRowCount":1,"tableSize":8}],"executionTime":0.0123,'
        .. '"resourceUsage":{"cache":{"memory":{"hits":1,"misses":0,"total":1}}}}}',
      'render: {"accumulate":false,"anomalyColumns":null,"isQuerySorted":false,"kind":null,"legend":null,'
        .. '"series":null,"title":null,"visualization":"table","xAxis":null,"xColumn":null,"xTitle":null,'
        .. '"yAxis":null,"yColumns":null,"yMax":"NaN","yMin":"NaN","ySplit":null,"yTitle":null}',
    }, err)
    -- in the json format, they are part of the document
    code, out, err = on("DEMO_WORKSPACE", "-o json --statistics 'Heartbeat | count'")
    assert.equals("", err)
    assert.equals('{"tables":[{"name":"PrimaryResult","columns":[{"name":"Count","type":"long"}],"rows":[\n[2000]\n]}],'
      .. '"statistics":{"query":{"datasetStatistics":[{"tableRowCount":1,"tableSize":8}],"executionTime":0.0123,'
      .. '"resourceUsage":{"cache":{"memory":{"hits":1,"misses":0,"total":1}}}}}}\n', out)
    -- a number of seconds is a timespan too
    on("DEMO_WORKSPACE", "-o csv -t 3600 'Heartbeat | count'")
    assert.equals("PT3600S", helper.last_request().json.timespan)
  end)

  it("queries a resource with --resource", function()
    local resource = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachines/vm-1"
    local code, out = cli(("--endpoint %s --api-key DEMO_KEY -o csv --resource %s 'Heartbeat | count'")
      :format(helper.endpoint(), resource))
    assert.equals(0, code)
    assert.equals(expected, out)
    assert.equals("/v1" .. resource .. "/query", helper.last_request().path)
  end)

  it("uses the demo workspace and key with --demo", function()
    local code, out = cli(("--demo --endpoint %s -o csv 'Heartbeat | count'"):format(helper.endpoint()))
    assert.equals(0, code)
    assert.equals(expected, out)
    local last = helper.last_request()
    assert.equals("/v1/workspaces/DEMO_WORKSPACE/query", last.path)
    assert.equals("DEMO_KEY", last.headers["x-api-key"])
  end)
end)

describe("the loganalytics command's authentication", function()
  local expected = crlf { "Count", "2000" }
  local query = "-o csv 'Heartbeat | count'"

  local function target()
    return ("--endpoint %s -w DEMO_WORKSPACE %s"):format(helper.endpoint(), query)
  end

  it("reads the workspace, endpoint and API key from the environment", function()
    local code, out = cli(query, { LOGANALYTICS_API_KEY = "DEMO_KEY", LOGANALYTICS_WORKSPACE = "DEMO_WORKSPACE",
                                   LOGANALYTICS_ENDPOINT = helper.endpoint() })
    assert.equals(0, code)
    assert.equals(expected, out)
    assert.equals("DEMO_KEY", helper.last_request().headers["x-api-key"])
  end)

  it("takes a service principal from the AZURE_* variables (the default chain)", function()
    local code, out, err = cli(target(), { AZURE_TENANT_ID = "TEST_TENANT", AZURE_CLIENT_ID = "TEST_CLIENT",
      AZURE_CLIENT_SECRET = "TEST_SECRET", AZURE_AUTHORITY_HOST = helper.endpoint() })
    assert.equals("", err)
    assert.equals(0, code)
    assert.equals(expected, out)
    assert.matches("^Bearer ", helper.last_request().headers.authorization)
  end)

  it("takes a service principal from flags, with a secret or a certificate", function()
    local code, out = cli(("--tenant-id TEST_TENANT --client-id TEST_CLIENT --client-secret TEST_SECRET "
      .. "--authority-host %s %s"):format(helper.endpoint(), target()))
    assert.equals(0, code)
    assert.equals(expected, out)
    code, out = cli(("--tenant-id TEST_TENANT --client-id TEST_CERT_CLIENT --certificate %s "
      .. "--authority-host %s %s"):format(helper.certificate_path(), helper.endpoint(), target()))
    assert.equals(0, code)
    assert.equals(expected, out)
  end)

  it("exits 3 when the key or the secret is refused, or no credential is found, and prints no secret", function()
    local code, out, err = cli(("--api-key NOT-THE-KEY-1234 %s"):format(target()))
    assert.equals(3, code)
    assert.equals("", out)
    assert.equals("loganalytics: auth error (HTTP 403 UnsupportedKeyError): The provided API key is not valid\n", err)

    code, out, err = cli(("--tenant-id TEST_TENANT --client-id TEST_CLIENT --client-secret WRONG-SECRET-5678 "
      .. "--authority-host %s %s"):format(helper.endpoint(), target()))
    assert.equals(3, code)
    assert.matches("^loganalytics: auth error %(HTTP 401 invalid_client%): client_secret: AADSTS7000215: Invalid client secret", err)
    assert.not_matches("WRONG%-SECRET", err)
    assert.equals(1, select(2, err:gsub("\n", "")))

    -- nothing to authenticate with: the default chain says what it tried
    code, out, err = cli(target(), { AZURE_AUTHORITY_HOST = helper.endpoint() })
    assert.equals(3, code)
    assert.matches("^loganalytics: auth error: default: no credential gave a token; tried environment: ", err)
    assert.equals(1, select(2, err:gsub("\n", "")))
  end)
end)

describe("the loganalytics command's exit codes", function()
  local function usage_error(args, message)
    local code, out, err = cli(args)
    assert.equals(2, code, args)
    assert.equals("", out)
    assert.equals("loganalytics: " .. message .. "\n", err)
  end

  it("exits 0 and prints nothing on standard error for a good query", function()
    local code, out, err = on("FAULTS", "-o csv slow_headers:0")
    assert.equals(0, code)
    assert.equals(crlf { "n,s", "1,a", "2,b", "3,c" }, out)
    assert.equals("", err)
  end)

  it("exits 1 for a query the service refuses, with one line on standard error", function()
    local code, out, err = on("DEMO_WORKSPACE", "'Heartbeat | bogus'")
    assert.equals(1, code)
    assert.equals("", out)
    assert.equals("loganalytics: service error (HTTP 400 BadArgumentError): The request had some invalid "
      .. "properties: Query could not be parsed at 'bogus' on line [1,12]\n", err)
    code, out, err = on("FIXTURES", "multiline_error")
    assert.equals(1, code)
    assert.equals("loganalytics: service error (HTTP 400 BadArgumentError): The request had some invalid "
      .. "properties: first line of the reason second line of the reason\n", err)
  end)

  it("exits 2 for usage errors, saying what is wrong", function()
    usage_error("--bogus x", "unknown option '--bogus' (see loganalytics --help)")
    usage_error("-x", "unknown option '-x' (see loganalytics --help)")
    usage_error("--demo -o xml x", "unknown output format 'xml' (table, csv, tsv, json or ndjson) (see loganalytics --help)")
    usage_error("--demo -t PT1X x", "invalid --timespan: 'PT1X' is not an ISO 8601 duration or interval (see loganalytics --help)")
    usage_error("--demo --server-timeout 1.5 x", "option --server-timeout must be a whole number >= 1, got '1.5' (see loganalytics --help)")
    usage_error("--demo -w", "option --workspace needs a value (ID) (see loganalytics --help)")
    usage_error("--demo --statistics=yes x", "option --statistics takes no value (see loganalytics --help)")
    usage_error("--demo a b", "give one query (quote it), got 2 arguments (see loganalytics --help)")
    usage_error("--demo ' \n '", "the query is empty (see loganalytics --help)")
    usage_error("--demo", "the query is empty (see loganalytics --help)")
    usage_error("--demo @/nonexistent/q.kql",
      "cannot read the query file: /nonexistent/q.kql: No such file or directory (see loganalytics --help)")
    usage_error("x", "no workspace: give -w/--workspace (or LOGANALYTICS_WORKSPACE), --resource or --demo (see loganalytics --help)")
    usage_error("--demo --api-key K x", "--demo uses the demo key: give no --api-key or service principal with it (see loganalytics --help)")
    usage_error("-w W --client-secret S x",
      "a service principal needs --tenant-id and --client-id (or AZURE_TENANT_ID and AZURE_CLIENT_ID) (see loganalytics --help)")
    -- what the module refuses is named by its flag
    usage_error("--demo --endpoint http://example.com x",
      "option --endpoint is plain http to a non-loopback host; use https or allow_http = true")
  end)

  it("exits 4 for a partial result, after printing its rows", function()
    local code, out, err = on("FIXTURES", "-o csv partial")
    assert.equals(4, code)
    assert.equals(crlf { "Computer,count_", "web-01,120", "web-02,98" }, out)
    assert.equals("loganalytics: partial result: service error (HTTP 200 PartialError): There were some errors "
      .. "when processing your query.\n", err)
    -- in json, the error is part of the document too
    code, out = on("FIXTURES", "-o json partial")
    assert.equals(4, code)
    assert.equals('{"tables":[{"name":"PrimaryResult","columns":[{"name":"Computer","type":"string"},'
      .. '{"name":"count_","type":"long"}],"rows":[\n["web-01",120],\n["web-02",98]\n]}],'
      .. '"error":{"code":"PartialError","message":"There were some errors when processing your query.",'
      .. '"details":[{"code":"EngineError","innererror":{"code":"-2133196797","message":"Query result set has '
      .. 'exceeded the internal data size limit 64000000 bytes (E_QUERY_RESULT_SET_TOO_LARGE).","severity":2,'
      .. '"severityName":"Error"},"message":"Something went wrong processing your query on the server."}]}}\n', out)
  end)

  it("documents every flag and exit code in --help, and says its version", function()
    local code, out, err = cli("--help")
    assert.equals(0, code)
    assert.equals("", err)
    local source = read("bin/loganalytics.lua")
    local flags = 0
    for flag in source:gmatch('%[%"(%-%-[%w-]+)%"%] = {') do
      flags = flags + 1
      -- on an option line of the help: "  -w, --workspace ID", "      --render"
      assert.is_truthy(out:find("\n  [%-%w, ]*" .. flag:gsub("%-", "%%-") .. "[ \n]"), flag)
    end
    assert.is_true(flags >= 20)
    for _, line in ipairs { "  0  success", "  1  the query failed", "  2  usage error",
                            "  3  authentication failed", "  4  partial result" } do
      assert.matches(line, out, 1, true)
    end
    code, out = cli("-h")
    assert.equals(0, code)
    assert.matches("^Usage: loganalytics %[OPTIONS%]", out)
    code, out = cli("--version")
    assert.equals(0, code)
    local version = require("loganalytics")._VERSION:gsub("%.", "%%.")
    assert.matches("^loganalytics " .. version .. " %(Lua 5%.4, libcurl %d+%.%d+%.%d+%)\n$", out)
  end)

  it("shows no spinner and writes no escape codes when standard error is not a terminal", function()
    -- a query slow enough for the spinner, were there a terminal
    local code, out, err = on("FAULTS", "-o csv slow_headers:0.3")
    assert.equals(0, code)
    assert.equals(crlf { "n,s", "1,a", "2,b", "3,c" }, out)
    assert.equals("", err)
    code, out, err = on("FAULTS", "slow_headers:0.3", { TERM = "xterm" })
    assert.equals(lf { "n  s", "-  -", "1  a", "2  b", "3  c" }, out)
    assert.equals("", err)
  end)
end)

describe("the on_progress query option", function()
  it("is called while a query runs, before the first row arrives", function()
    local client = helper.client { workspace = "FAULTS" }
    local core = require "loganalytics.core"
    local calls, started = {}, core.now()
    local result = assert(client:query("slow_headers:0.3", { on_progress = function()
      calls[#calls + 1] = core.now() - started
    end }))
    assert.equals(3, #result.tables[1].rows)
    assert.is_true(#calls >= 3, tostring(#calls))
    for i = 2, #calls do assert.is_true(calls[i] - calls[i - 1] < 0.5) end
    -- and by the rows iterator
    local n = 0
    for _ in client:rows("slow_headers:0.2", { on_progress = function() n = n + 1 end }) do end
    assert.is_true(n >= 2, tostring(n))
  end)

  it("keeps being called while a retry waits, and raising there ends the query before the next try", function()
    local client = helper.client { workspace = "FAULTS", max_retries = 1 }
    local core = require "loganalytics.core"
    local function longest_gap(run)
      local last, gap = core.now(), 0
      run(function()
        gap = math.max(gap, core.now() - last)
        last = core.now()
      end)
      return gap
    end
    -- each first try is answered 429 with Retry-After: 1 (one counter per key)
    local gap = longest_gap(function(tick)
      assert.equals(3, #assert(client:query("flaky:wait_q:1:429:1", { on_progress = tick })).tables[1].rows)
    end)
    assert.is_true(gap < 0.3, "no call for " .. gap .. " s")
    gap = longest_gap(function(tick)
      for _ in client:rows("flaky:wait_r:1:429:1", { on_progress = tick }) do end
    end)
    assert.is_true(gap < 0.3, "no call for " .. gap .. " s")
    -- half a second in, the 429 has long arrived and the one-second wait is under way
    helper.reset()
    local started = core.now()
    local ok, err = pcall(client.query, client, "flaky:wait_x:1:429:1", { on_progress = function()
      if core.now() - started > 0.5 then error("enough", 0) end
    end })
    assert.is_false(ok)
    assert.equals("enough", err)
    assert.is_true(core.now() - started < 0.9)
    assert.equals(1, #helper.get("/_test/requests"))
  end)

  it("cancels the transfer when it raises, leaving the client usable; refuses what is not a function", function()
    local client = helper.client { workspace = "FAULTS" }
    local core = require "loganalytics.core"
    local started = core.now()
    local ok, err = pcall(client.query, client, "slow_headers:5", { on_progress = function() error({ stop = true }) end })
    assert.is_false(ok)
    assert.same({ stop = true }, err)
    assert.is_true(core.now() - started < 2)
    assert.equals(3, #assert(client:query("slow_headers:0")).tables[1].rows)
    ok, err = pcall(client.query, client, "x", { on_progress = 1 })
    assert.is_false(ok)
    assert.matches("on_progress", err)
  end)
end)

-- On a real terminal: tmux runs the command in a 60x20 pane (of a private
-- tmux server), on a query the server holds for 1.2 s.
describe("the loganalytics command on a terminal", function()
  -- a private server (its socket beside this run's work directory) whose
  -- panes keep the whole output in their history
  local config, socket = work .. ".tmux.conf", work .. ".tmux"
  local tmux = ("tmux -S %s -f %s"):format(socket, config)
  local WIDTH = 60

  setup(function()
    write(config, "set-option -g history-limit 5000\n")
  end)

  teardown(function()
    helper.run(tmux .. " kill-server")
    os.remove(config)
    os.remove(socket)
  end)

  local function start(name, shell_command)
    local ok, output = helper.run(("%s new-session -d -s %s -x %d -y 20 %s"):format(
      tmux, name, WIDTH, quote(shell_command .. "; echo rc=$?; sleep 60")))
    assert(ok, output)
  end

  -- the pane's text, wrapped lines joined
  local function screen(name, history)
    local pipe = assert(io.popen(("%s capture-pane -p -J %s -t %s"):format(tmux, history and "-S - -E -" or "", name)))
    local text = pipe:read("*a")
    pipe:close()
    return text
  end

  local function wait_for(name, pattern)
    for _ = 1, 100 do
      local text = screen(name, true)
      if text:find(pattern) then return text end
      os.execute("sleep 0.1")
    end
    error("never appeared on the terminal: " .. pattern .. "\n" .. screen(name, true))
  end

  -- the spinner's line: a frame, what runs, the seconds so far (and rows)
  local SPINNER = "\n?([|/\\-]) running query (%d+%.%d)s([^\n]*)"

  local function spinner_seen(text)
    local frame, seconds, rest = text:match(SPINNER)
    return frame, tonumber(seconds), rest
  end

  it("animates a spinner with the elapsed time, then prints the table fitted to the width in its place", function()
    local query = ("%s --endpoint %s -w FAULTS --api-key DEMO_KEY"):format(command, helper.endpoint())
    -- the table on the terminal; csv to a file while the spinner counts rows
    start("table", "env -u COLUMNS " .. query .. " stall:1.2")
    start("csv", query .. " -o csv stall:1.2 > " .. work .. "/stall.csv")

    local first = wait_for("table", "running query 0%.[3-9]s")
    local _, seconds1 = spinner_seen(first)
    os.execute("sleep 0.3")
    local frame2, seconds2 = spinner_seen(screen("table"))
    assert.is_string(frame2, "the spinner went away too early")
    assert.is_true(seconds2 > seconds1, ("%s then %s"):format(seconds1, seconds2))
    local _, _, rows = spinner_seen(screen("csv"))
    assert.matches("^, %d+ rows$", rows)

    local final = wait_for("table", "\nrc=%d+")
    -- the screen's last lines: the newest rows cut to 60 columns, the spinner line gone
    local expected = {}
    local function row(i)
      local s = ("row %06d %s"):format(i, ("abcdefghij"):rep(8))
      return ("%4d  %s…"):format(i, s:sub(1, 53))
    end
    for i = 1985, 1999 do expected[#expected + 1] = row(i) end
    expected[#expected + 1] = "rc=0"
    local visible = screen("table"):gsub("\n+$", "")
    assert.equals(table.concat(expected, "\n"), visible:match("[^\n]*\n" .. ("[^\n]*\n"):rep(14) .. "rc=%d+$"))
    assert.not_matches("running query", final)
    -- the whole output, from the scrollback: header, dashes, 2000 rows, all within the width
    local lines = {}
    for line in final:gmatch("[^\n]*") do
      if line ~= "" then lines[#lines + 1] = line end
    end
    assert.equals("   n  s", lines[1])
    assert.equals("----  " .. ("-"):rep(54), lines[2])
    assert.equals(row(0), lines[3])
    assert.equals(2003, #lines)
    for _, line in ipairs(lines) do
      local _, chars = line:gsub("[^\128-\191]", "")
      assert.is_true(chars <= WIDTH, line)
    end

    wait_for("csv", "rc=%d+")
    assert.equals("rc=0", (screen("csv"):gsub("\n+$", "")))
    local csv = read(work .. "/stall.csv")
    assert.equals(2001, select(2, csv:gsub("\r\n", "")))
  end)

  it("refuses to wait for a query typed on the terminal when none is given", function()
    start("none", command .. " --demo")
    local text = wait_for("none", "rc=%d+")
    assert.equals("loganalytics: no query: give it as an argument, @FILE, or on standard input "
      .. "(see loganalytics --help)\nrc=2", (text:gsub("\n+$", "")))
  end)
end)

describe("the loganalytics command's --export", function()
  before_each(function()
    helper.reset()
    helper.configure_server('{"generated_rows":30000,"row_cap":5000}')
  end)

  local SPAN = "2025-12-01T00:00:00Z/2026-01-01T00:00:00Z"

  it("writes every row as csv, in order, past the row cap", function()
    -- (cli() writes standard output to a file, read back here)
    local code, out, err = on("GENERATED", ("--export -t %s -o csv --concurrency 3 --slice P4D Events")
      :format(SPAN))
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    local lines = {}  -- records end in CRLF (a Message may hold a bare LF, quoted)
    for line in out:gmatch("(.-)\r\n") do lines[#lines + 1] = line end
    assert.are.equal(30001, #lines)  -- one header, then every row
    assert.matches("^Id,TimeGenerated,", lines[1])
    assert.matches("^1,2025%-12%-01T00:00:00", lines[2])
    assert.matches("^30000,", lines[#lines])
    local last = 0
    for i = 2, #lines do
      local id = tonumber(lines[i]:match("^(%d+),"))
      assert(id == last + 1, "line " .. i .. ": Id " .. tostring(id) .. " after " .. last)
      last = id
    end
  end)

  it("writes ndjson", function()
    local code, out, err = on("GENERATED", ("--export --timespan %s -o ndjson Events"):format(SPAN))
    assert.are.equal(0, code, err)
    local n, first, last = 0, nil, nil
    for line in out:gmatch("[^\n]+") do
      n = n + 1
      local id = tonumber(line:match('^{"Id":(%d+),'))
      first = first or id
      last = id
    end
    assert.are.equal(30000, n)
    assert.are.equal(1, first)
    assert.are.equal(30000, last)
  end)

  it("refuses a timespan without ends, a format that holds rows, and --slice without --export", function()
    local code, _, err = on("GENERATED", "--export -t P1D -o csv Events")
    assert.are.equal(2, code)
    assert.matches("START/END", err)
    code, _, err = on("GENERATED", ("--export -t %s -o table Events"):format(SPAN))
    assert.are.equal(2, code)
    assert.matches("csv, tsv or ndjson", err)
    code, _, err = on("GENERATED", "--slice PT1H Events")
    assert.are.equal(2, code)
    assert.matches("with %-%-export", err)
  end)
end)
