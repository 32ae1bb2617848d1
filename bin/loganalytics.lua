-- The `loganalytics` command: runs a KQL query against Azure Monitor Log
-- Analytics and prints the result (README, "Command line"). This file reads
-- the arguments and the environment, makes the client and maps outcomes to
-- exit codes; the formats are in lua/loganalytics/cli/.

local la = require "loganalytics"
local core = require "loganalytics.core"
local timespan = require "loganalytics.timespan"
local numbers = require "loganalytics.numbers"
local formats = require "loganalytics.cli.formats"
local terminal = require "loganalytics.cli.terminal"
local values = require "loganalytics.cli.values"

local getenv = os.getenv

local EXIT = { ok = 0, failed = 1, usage = 2, auth = 3, partial = 4, interrupted = 130 }

local DEMO = { workspace = "DEMO_WORKSPACE", api_key = "DEMO_KEY", endpoint = "https://api.loganalytics.io" }

local HELP = [==[
Usage: loganalytics [OPTIONS] [QUERY | @FILE | -]

Runs a KQL query against Azure Monitor Log Analytics and prints the result.
The query is QUERY, the contents of FILE (@FILE), or standard input (- or no
argument).

Target:
  -w, --workspace ID        the workspace (default: $LOGANALYTICS_WORKSPACE)
      --workspaces ID,...   more workspaces to query along with it
      --resource ID         query an Azure resource's logs instead of a workspace
                            (/subscriptions/.../providers/...)
  -t, --timespan TIMESPAN   ISO 8601 duration (PT1H, P1D) or interval
                            (START/END, START/PT1H, PT1H/END), or a number of
                            seconds back from now; none: the query's own filters
      --server-timeout SECONDS
                            how long the service may run the query (Prefer: wait)
      --statistics          ask for the query statistics: in the json output, or
                            one line "statistics: {...}" on standard error
      --render              ask for the render (visualization) hints: likewise,
                            "render: {...}"
      --endpoint URL        the query API (default: $LOGANALYTICS_ENDPOINT, else
                            https://api.loganalytics.azure.com or the cloud's)
      --cloud NAME          public (default), usgov or china

Export (rows past the service's caps, for queries whose rows are records;
not for a summarize over the whole range):
      --export              run the query over consecutive time slices of
                            --timespan (START/END, required), halving a slice
                            the service cuts at its row or size cap; rows are
                            written as they come, in time order (csv, tsv or
                            ndjson), in flat memory
      --concurrency N       slices in flight at once (default 4)
      --slice DURATION      the first slices' width (ISO 8601, e.g. PT1H, or
                            seconds; default a 16th of the timespan)

Output:
  -o, --output FORMAT       table (default), csv, tsv, json or ndjson
      --width COLUMNS       cut the table to this width (0: no limit; default:
                            the terminal's width when standard output is one)
      --no-spinner          no spinner on standard error while the query runs
                            (there is none anyway unless standard error is a
                            terminal)

Authentication (the first that applies):
      --demo                the public demo workspace: DEMO_WORKSPACE, key
                            DEMO_KEY, endpoint https://api.loganalytics.io
                            (-w and --endpoint still apply)
      --api-key KEY         an API key ($LOGANALYTICS_API_KEY keeps it out of
                            the process list)
      --tenant-id ID        a service principal: tenant, client id and a secret
      --client-id ID        or a certificate; each defaults to AZURE_TENANT_ID,
      --client-secret SECRET
                            AZURE_CLIENT_ID, AZURE_CLIENT_SECRET,
      --certificate PATH    AZURE_CLIENT_CERTIFICATE_PATH (a PEM file with the
                            certificate and its key; AZURE_CLIENT_CERTIFICATE_PASSWORD
                            if the key is encrypted)
      --authority-host URL  the identity platform (default: $AZURE_AUTHORITY_HOST,
                            else the cloud's)
  With none of these: $LOGANALYTICS_API_KEY if set, else the Azure SDKs'
  default chain: AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET (or
  AZURE_CLIENT_CERTIFICATE_PATH), workload identity (AZURE_FEDERATED_TOKEN_FILE),
  managed identity, then the Azure CLI's `az login`.

  -h, --help                this help
      --version             the version

Formats (every table of the result, a blank line between tables):
  table   columns aligned under their names, numbers to the right; control
          characters shown as \n \r \t \xNN; null is blank; cells cut with an
          ellipsis to fit the width
  csv     RFC 4180: header row of column names, CRLF line ends, fields holding
          a comma, quote, CR or LF in quotes with quotes doubled; null is an
          empty field
  tsv     tab-separated, LF line ends, header row; \ tab LF CR in a value
          written \\ \t \n \r; null is an empty field
  json    one document: {"tables":[{"name","columns":[{"name","type"}],
          "rows":[[...],...]}]} with one row per line, plus "error" (partial
          results), "statistics" and "render" when present
  ndjson  one JSON object per row (column name: value), one per line
In every format: longs exact, reals in the shortest form that reads back the
same, NaN/Infinity/-Infinity spelled so (strings in JSON), booleans true/false,
dynamic values as their JSON text (JSON in json/ndjson), text as UTF-8 unchanged.
csv, tsv and ndjson are written as the rows arrive; table and json hold the
whole result first.

Exit status:
  0  success
  1  the query failed: a service, network, timeout or protocol error
  2  usage error: an unknown or malformed option, no query, no workspace
  3  authentication failed: no credential found, or the key or credential refused
  4  partial result: the service returned rows and an error; the rows are
     printed, the error goes to standard error
  130  interrupted (Ctrl-C)
]==]

------------------------------------------------------------------ failing

-- Raised to leave with an exit code and one line on standard error.
local Failure = {}
Failure.__index = Failure

local function fail(code, message)
  error(setmetatable({ code = code, message = message }, Failure), 0)
end

local function usage(message)
  fail(EXIT.usage, message .. " (see loganalytics --help)")
end

------------------------------------------------------------------ arguments

-- Every option: its short form, and the name of its value (nil: a switch).
local OPTIONS = {
  ["--workspace"] = { short = "-w", value = "ID" },
  ["--workspaces"] = { value = "IDS" },
  ["--resource"] = { value = "ID" },
  ["--timespan"] = { short = "-t", value = "TIMESPAN" },
  ["--server-timeout"] = { value = "SECONDS" },
  ["--statistics"] = {},
  ["--render"] = {},
  ["--endpoint"] = { value = "URL" },
  ["--cloud"] = { value = "NAME" },
  ["--output"] = { short = "-o", value = "FORMAT" },
  ["--width"] = { value = "COLUMNS" },
  ["--no-spinner"] = {},
  ["--export"] = {},
  ["--concurrency"] = { value = "N" },
  ["--slice"] = { value = "DURATION" },
  ["--demo"] = {},
  ["--api-key"] = { value = "KEY" },
  ["--tenant-id"] = { value = "ID" },
  ["--client-id"] = { value = "ID" },
  ["--client-secret"] = { value = "SECRET" },
  ["--certificate"] = { value = "PATH" },
  ["--authority-host"] = { value = "URL" },
  ["--help"] = { short = "-h" },
  ["--version"] = {},
}
local BY_SHORT = {}
for long, spec in pairs(OPTIONS) do
  if spec.short then BY_SHORT[spec.short] = long end
end

-- Returns the options given (by long name without dashes) and the
-- positional arguments. Values never appear in messages: some are secrets.
local function parse(argv)
  local given, positional = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local long, inline
    if a == "--" then
      for j = i + 1, #argv do positional[#positional + 1] = argv[j] end
      break
    elseif a:sub(1, 2) == "--" then
      long, inline = a:match("^(%-%-[^=]+)=(.*)$")
      long = long or a
    elseif a:sub(1, 1) == "-" and #a > 1 then
      long = BY_SHORT[a:sub(1, 2)]
      if not long then usage("unknown option '" .. a:sub(1, 2) .. "'") end
      if #a > 2 then inline = a:sub(3) end
    else
      positional[#positional + 1] = a
    end
    if long then
      local spec = OPTIONS[long]
      if not spec then usage("unknown option '" .. long .. "'") end
      local name = long:sub(3)
      if spec.value then
        local value = inline
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then usage("option " .. long .. " needs a value (" .. spec.value .. ")") end
        end
        if name == "workspaces" and given.workspaces then value = given.workspaces .. "," .. value end
        given[name] = value
      else
        if inline ~= nil then usage("option " .. long .. " takes no value") end
        given[name] = true
      end
    end
    i = i + 1
  end
  return given, positional
end

------------------------------------------------------------------ the query

-- The query text: an argument, @FILE, or standard input.
local function query_text(positional)
  if #positional > 1 then usage("give one query (quote it), got " .. #positional .. " arguments") end
  local source = positional[1]
  local text
  if source == nil or source == "-" then
    if source == nil and terminal.is_tty(0) then
      usage("no query: give it as an argument, @FILE, or on standard input")
    end
    text = io.stdin:read("*a")
  elseif source:sub(1, 1) == "@" then
    local path = source:sub(2)
    local file, why = io.open(path, "rb")
    if not file then usage("cannot read the query file: " .. tostring(why)) end
    text = file:read("*a")
    file:close()
  else
    text = source
  end
  if not text or text:find("^%s*$") then usage("the query is empty") end
  return text
end

local function whole_number(flag, text, minimum)
  local n = numbers.tonumber(text)
  if not n or n ~= math.floor(n) or n < minimum or n >= 2 ^ 31 then
    usage(("option %s must be a whole number >= %d, got '%s'"):format(flag, minimum, text))
  end
  return n
end

local function comma_list(text)
  local list = {}
  for item in text:gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then list[#list + 1] = item end
  end
  return list
end

-- The query options from the flags.
local function query_options(given)
  local opts = {}
  if given.timespan then
    local span = numbers.tonumber(given.timespan) or given.timespan
    local ok, why = pcall(timespan.format, span)
    if not ok then usage("invalid --timespan: " .. tostring(why):gsub("^timespan: ", "")) end
    opts.timespan = span
  end
  if given.workspaces then
    local list = comma_list(given.workspaces)
    if #list == 0 then usage("option --workspaces needs at least one workspace id") end
    opts.workspaces = list
  end
  if given.resource then
    if given.resource:sub(1, 1) ~= "/" then
      usage("option --resource must be a resource id starting with '/'")
    end
    opts.resource = given.resource
  end
  if given["server-timeout"] then
    opts.server_timeout = whole_number("--server-timeout", given["server-timeout"], 1)
  end
  opts.statistics = given.statistics or nil
  opts.render = given.render or nil
  return opts
end

------------------------------------------------------------------ the client

local SERVICE_PRINCIPAL_FLAGS = { "tenant-id", "client-id", "client-secret", "certificate" }

-- How to authenticate, from the flags, then the environment: the la.new
-- options that say it (api_key or credential).
local function authentication(given, common)
  local principal = false
  for _, flag in ipairs(SERVICE_PRINCIPAL_FLAGS) do
    if given[flag] then principal = true end
  end
  if given.demo and (given["api-key"] or principal) then
    usage("--demo uses the demo key: give no --api-key or service principal with it")
  end
  if given["api-key"] and principal then
    usage("give either --api-key or a service principal, not both")
  end
  if given.demo then return { api_key = DEMO.api_key } end
  if given["api-key"] then return { api_key = given["api-key"] } end
  if principal then
    local tenant = given["tenant-id"] or getenv("AZURE_TENANT_ID")
    local client_id = given["client-id"] or getenv("AZURE_CLIENT_ID")
    if not tenant or not client_id then
      usage("a service principal needs --tenant-id and --client-id (or AZURE_TENANT_ID and AZURE_CLIENT_ID)")
    end
    local options = { tenant = tenant, client_id = client_id }
    for k, v in pairs(common) do options[k] = v end
    local secret = given["client-secret"] or (not given.certificate and getenv("AZURE_CLIENT_SECRET"))
    if secret then
      options.client_secret = secret
      return { credential = la.credentials.client_secret(options) }
    end
    local certificate = given.certificate or getenv("AZURE_CLIENT_CERTIFICATE_PATH")
    if not certificate then
      usage("a service principal needs --client-secret or --certificate (or AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH)")
    end
    options.certificate = certificate
    options.password = getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD")
    return { credential = la.credentials.client_certificate(options) }
  end
  local key = getenv("LOGANALYTICS_API_KEY")
  if key and key ~= "" then return { api_key = key } end
  return { credential = la.credentials.default(common) }
end

local function make_client(given)
  local common = { cloud = given.cloud, authority_host = given["authority-host"] }
  local options = authentication(given, common)
  options.cloud = given.cloud
  options.user_agent = "loganalytics-cli/" .. la._VERSION
  options.endpoint = given.endpoint or getenv("LOGANALYTICS_ENDPOINT")
  options.workspace = given.workspace or getenv("LOGANALYTICS_WORKSPACE")
  if given.demo then
    options.endpoint = options.endpoint or DEMO.endpoint
    options.workspace = given.workspace or DEMO.workspace
  end
  if options.endpoint == "" then options.endpoint = nil end
  if options.workspace == "" then options.workspace = nil end
  if given.resource and given.workspace then usage("give either --workspace or --resource, not both") end
  if given.resource then options.workspace = nil end
  if not options.workspace and not given.resource then
    usage("no workspace: give -w/--workspace (or LOGANALYTICS_WORKSPACE), --resource or --demo")
  end
  return la.new(options)
end

------------------------------------------------------------------ running

local spinner  -- the spinner on screen, erased whatever way we leave

local function output_format(given)
  local name = given.output or "table"
  for _, known in ipairs(formats.names) do
    if name == known then return name end
  end
  usage("unknown output format '" .. name .. "' (table, csv, tsv, json or ndjson)")
end

local function table_width(given, stdout_tty)
  if given.width then
    local width = whole_number("--width", given.width, 0)
    return width > 0 and width or nil
  end
  if stdout_tty() then return terminal.width() end
  return nil
end

-- --export: the rows of every time slice, written as they come.
local function export(client, kql, opts, writer, given, format_name)
  if not writer.streams then usage("--export writes csv, tsv or ndjson (-o), not " .. format_name) end
  if not opts.timespan or type(opts.timespan) ~= "string" or not opts.timespan:find("/") then
    usage("--export needs --timespan START/END")
  end
  local ok, why = pcall(timespan.interval, opts.timespan)
  if not ok then usage("invalid --timespan for --export: " .. tostring(why):gsub("^timespan: ", "")) end
  if given.concurrency then opts.concurrency = whole_number("--concurrency", given.concurrency, 1) end
  if given.slice then opts.slice = numbers.tonumber(given.slice) or given.slice end
  opts.on_row = writer.row
  local summary, err = client:export(kql, opts)
  if not summary then
    io.stdout:flush()
    fail(err.kind == "auth" and EXIT.auth or EXIT.failed, tostring(err))
  end
  writer.finish({ tables = {} })
  io.stdout:flush()
  return EXIT.ok
end

local function main(argv)
  local given, positional = parse(argv)
  if given.help then
    io.stdout:write(HELP)
    return EXIT.ok
  end
  if given.version then
    io.stdout:write(("loganalytics %s (%s, libcurl %s)\n"):format(la._VERSION, _VERSION, core.curl_version))
    return EXIT.ok
  end
  local format_name = output_format(given)
  local opts = query_options(given)
  local kql = query_text(positional)

  -- asked at most once each: a fork per question
  local stdout_is_tty
  local function stdout_tty()
    if stdout_is_tty == nil then stdout_is_tty = terminal.is_tty(1) end
    return stdout_is_tty
  end
  local writer = formats.new(format_name, io.stdout,
    { width = format_name == "table" and table_width(given, stdout_tty) or nil })

  local client = make_client(given)

  if given.export then return export(client, kql, opts, writer, given, format_name) end
  if given.concurrency or given.slice then usage("options --concurrency and --slice go with --export") end

  if not given["no-spinner"] and getenv("TERM") ~= "dumb" and terminal.is_tty(2) then
    spinner = terminal.spinner(io.stderr, core.now, "running query")
    opts.on_progress = function() spinner:tick() end
  end
  if writer.streams then
    local shares_screen = spinner and stdout_tty()
    opts.on_row = function(row, tbl)
      if spinner then
        -- rows on the same screen end the spinner; else it counts them
        if shares_screen then spinner:stop() else spinner:row() end
      end
      writer.row(row, tbl)
    end
  end

  local result, err = client:query(kql, opts)
  if spinner then spinner:stop() end
  if not result then
    fail(err.kind == "auth" and EXIT.auth or EXIT.failed, tostring(err))
  end
  writer.finish(result)
  io.stdout:flush()
  if format_name ~= "json" then
    if result.statistics ~= nil then io.stderr:write("statistics: ", values.json(result.statistics), "\n") end
    if result.render ~= nil then io.stderr:write("render: ", values.json(result.render), "\n") end
  end
  if result.status == "partial" then
    io.stderr:write((tostring(result.error):gsub("^loganalytics: ", "loganalytics: partial result: ")), "\n")
    return EXIT.partial
  end
  return EXIT.ok
end

-- The module names its options; the command's user knows them as flags.
local FLAG_OF_OPTION = {
  endpoint = "--endpoint", workspace = "--workspace", workspaces = "--workspaces",
  resource = "--resource", timespan = "--timespan", api_key = "--api-key", tenant = "--tenant-id",
  client_id = "--client-id", client_secret = "--client-secret", certificate = "--certificate",
  authority_host = "--authority-host", cloud = "--cloud", concurrency = "--concurrency",
  slice = "--slice",
}

-- Every way out: an exit code, and at most one line on standard error.
local function run(argv)
  local ok, outcome = pcall(main, argv)
  if ok then return outcome end
  if spinner then spinner:stop() end
  io.stdout:flush()
  if getmetatable(outcome) == Failure then
    io.stderr:write("loganalytics: ", (outcome.message:gsub("^loganalytics: ", "")), "\n")
    return outcome.code
  end
  local message = tostring(outcome)
  if message:find("interrupted!$") then
    io.stderr:write("loganalytics: interrupted\n")
    return EXIT.interrupted
  end
  if message:find("^loganalytics: ") then  -- the module refused an option: a usage error
    message = message:gsub("[\r\n].*", ""):gsub("option '([%w_]+)'", function(name)
      return FLAG_OF_OPTION[name] and "option " .. FLAG_OF_OPTION[name]
    end)
    io.stderr:write(message, "\n")
    return EXIT.usage
  end
  io.stderr:write("loganalytics: internal error: ", (message:gsub("[\r\n].*", "")), "\n")
  return EXIT.failed
end

os.exit(run(arg))
