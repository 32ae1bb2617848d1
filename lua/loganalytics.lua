--- Azure Monitor Log Analytics queries from Lua.
--
-- @{new} makes a @{client}; @{client:query} runs a KQL query over the Log
-- Analytics v1 query API and returns a @{result} whose rows are typed Lua
-- values, or `nil, err`. Rows can also be streamed to a handler (the
-- `on_row` option) or taken one at a time (@{client:rows}), keeping none.
--
-- Misuse (a wrong type, an unknown option, more than one way to
-- authenticate) raises, naming the option. Every failure of the world
-- (network, service, credentials, malformed responses) returns `nil, err`
-- with an @{error} object.
--
-- Option checking, URLs, headers and error objects live here; the C module
-- `loganalytics.core` owns the libcurl handle and parses responses as they
-- arrive. `loganalytics.core` is internal: nothing in it is part of the API.
-- @module loganalytics
-- @alias la
-- @usage
-- local la = require "loganalytics"
-- local client = la.new{ workspace = "DEMO_WORKSPACE", api_key = "DEMO_KEY" }
-- local result, err = client:query("Heartbeat | take 10", { timespan = "PT1H" })
-- if not result then error(tostring(err)) end
-- for _, row in ipairs(result.tables[1].rows) do
--   print(row.TimeGenerated, row.Computer)   -- by name, or row[1], row[2]
-- end

local core = require "loganalytics.core"
local timespan = require "loganalytics.timespan"
local errors = require "loganalytics.errors"
local credentials = require "loganalytics.credentials"
local clouds = require "loganalytics.clouds"
local retry = require "loganalytics.retry"
local numbers = require "loganalytics.numbers"
local redaction = require "loganalytics.redact"

local type, pairs, ipairs, tostring, select, pcall, error, setmetatable =
  type, pairs, ipairs, tostring, select, pcall, error, setmetatable
local format, concat = string.format, table.concat

local la = {
  --- The module's version, `"0.2.0"`.
  _VERSION = "0.2.0",
  --- JSON null: a light userdata NULL, equal to cjson.null and ngx.null.
  -- Null cells of every column type are `la.null`, never `nil`, so rows
  -- have no holes.
  null = core.null,
  --- Is `v` an @{error} object of this module?
  -- @function is_error
  -- @param v any value
  -- @treturn boolean
  is_error = errors.is_error,
  --- Azure AD credentials: the constructors of @{loganalytics.credentials}
  -- (`la.credentials.client_secret{...}`, ...).
  credentials = credentials,
  --- The authorize URL of the code and implicit flows: see
  -- @{loganalytics.credentials.authorize_url}.
  -- @function authorize_url
  -- @tparam table options tenant, client_id, redirect_uri, ...
  -- @treturn string the URL
  authorize_url = credentials.authorize_url,
  --- A datetime as the service sends it, as a number: the C core's parser
  -- (the one the `datetime` option uses). Strict: `YYYY-MM-DDTHH:MM:SS`,
  -- then `.` and 1 to 7 fractional digits or none, then `Z` (UTC; an
  -- offset such as `+00:00` is refused), years 0001 to 9999, a real date
  -- (month lengths, leap years), hours 00-23, no leap second.
  -- @function datetime
  -- @tparam string text e.g. `"2024-02-29T12:00:00.1234567Z"`
  -- @tparam[opt="epoch"] string mode `"epoch"`: seconds since 1970-01-01T00:00:00Z,
  --   a float (its fraction to about a microsecond); `"epoch_ms"`: whole
  --   milliseconds, an integer (rounded down, before 1970 too); `"ticks"`: exact
  --   100-ns ticks since 0001-01-01T00:00:00Z, an integer (Lua 5.3+ only)
  -- @return the number, or `nil, why` when `text` is not such a datetime;
  --   raises when `text` is not a string or `mode` not one of these
  -- @usage la.datetime("1970-01-02T00:00:00Z")             --> 86400.0
  -- la.datetime("2024-02-29T00:00:00.5Z", "epoch_ms")      --> 1709164800500
  datetime = core.datetime,
  --- The inverse of @{datetime}: a time as the service's text, always with 7
  -- fractional digits, so `la.iso8601(la.datetime(s, "ticks"), "ticks") == s`
  -- for any `s` with 7 digits.
  -- @function iso8601
  -- @tparam number value seconds since 1970 (a fraction is rounded to the nearest
  --   100 ns), milliseconds, or ticks, as `mode` says
  -- @tparam[opt="epoch"] string mode `"epoch"`, `"epoch_ms"` or `"ticks"` (Lua 5.3+)
  -- @return `"YYYY-MM-DDTHH:MM:SS.fffffffZ"`, or `nil, why` when the time is not
  --   in years 1 to 9999 (NaN, infinities); raises when `value` is not a number
  -- @usage la.iso8601(0)           --> "1970-01-01T00:00:00.0000000Z"
  iso8601 = core.iso8601,
}
--- Safe KQL: literals no input can escape and `format` with typed
-- placeholders, see @{loganalytics.kql}.
la.kql = require "loganalytics.kql"

-- Resource Manager's workspace GET (a named workspace's customer id)
local WORKSPACE_API_VERSION = "2022-10-01"
-- seconds a workspace lookup may take, retries included, unless `timeout` says
local LOOKUP_TIMEOUT = 30

local USER_AGENT = format("loganalytics-lua/%s (%s; libcurl/%s)",
  la._VERSION, _VERSION, core.curl_version)

local check = require "loganalytics.check"
local misuse, check_type, check_text, check_known = check.misuse, check.type, check.text, check.known
local check_endpoint, check_seconds, is_callable, escape =
  check.endpoint, check.seconds, check.is_callable, check.escape
local check_workspace, check_segment = check.workspace, check.segment

------------------------------------------------------------------ client

local Client = {}
Client.__index = Client
-- the one-transfer-per-client rule, defined with the transfers below
local busy, abandoned, get_active
Client.__name = "loganalytics.client"

local CLIENT_OPTIONS = {
  workspace = true, endpoint = true, arm_endpoint = true, api_key = true,
  api_key_in = true, token = true, credential = true, allow_http = true,
  user_agent = true, connect_timeout = true, timeout = true, cloud = true, audience = true,
  stall_timeout = true, max_retries = true, retry_delay = true, retry_max_delay = true,
  ca_file = true, ca_path = true, verify_tls = true, proxy = true, log = true,
  threads = true, datetime = true, dynamic = true,
}

-- How cells become values (options datetime, dynamic, shape): checked
-- here for a clear message; the C core checks them again.
local DATETIME_MODES = { string = true, epoch = true, epoch_ms = true, ticks = true }
-- Lua 5.1, 5.2 and LuaJIT have no 64-bit integers: ticks (6e17 today)
-- would not be exact there (a polyfilled math.type does not count: the
-- literal below is 2^53 itself where numbers are doubles).
local HAS_INTEGERS = 9007199254740993 ~= 9007199254740992
local function check_datetime(name, value)
  if value == "ticks" and not HAS_INTEGERS then
    misuse(("option '%s' = \"ticks\" needs Lua 5.3 or later (64-bit integers)"):format(name))
  end
  if value == nil or type(value) == "function" or DATETIME_MODES[value] then return value end
  if is_callable(value) then
    return function(text) return value(text) end
  end
  misuse(("option '%s' must be \"string\", \"epoch\", \"epoch_ms\", \"ticks\" or a function, got %s")
    :format(name, type(value) == "string" and ("'" .. value .. "'") or type(value)))
end
local function check_choice(name, value, a, b)
  if value == nil or value == a or value == b then return value end
  misuse(("option '%s' must be \"%s\" or \"%s\", got %s"):format(name, a, b,
    type(value) == "string" and ("'" .. value .. "'") or type(value)))
end

-- The service's own wait limit when no Prefer: wait is sent (3 minutes): the
-- default `timeout` leaves it 15 s more, so the service's 504 arrives first.
local SERVICE_DEFAULT_WAIT = 180
local TIMEOUT_MARGIN = 15
local DEFAULT_CONNECT_TIMEOUT = 10
local DEFAULT_STALL_TIMEOUT = 60

local function check_workspace_table(ws)
  check_known(ws, { subscription = true, resource_group = true, name = true }, "workspace")
  -- each is one path segment of the Resource Manager URL
  check_segment("workspace.subscription", ws.subscription)
  check_segment("workspace.resource_group", ws.resource_group)
  check_segment("workspace.name", ws.name)
end


-- How a client does its I/O: libcurl handles (core.new) and blocking
-- sleeps by default. loganalytics.resty gives nginx cosockets instead
-- (`new_http` makes an object with core's perform/start/step/cancel/close,
-- `per_call`: a fresh one for every transfer, as many clients' requests run
-- at once on one event loop; `pace`, if any, is called as a query starts).
local DEFAULT_IO = { new_http = core.new, sleep = core.sleep, per_call = false }

local function new_client(options, io)
  if type(options) ~= "table" then
    error("loganalytics: la.new expects an options table, got " .. type(options), 3)
  end
  check_known(options, CLIENT_OPTIONS, "la.new")
  local allow_http = options.allow_http
  if allow_http ~= nil then check_type("allow_http", allow_http, "boolean") end

  local ws = options.workspace
  if type(ws) == "table" then
    check_workspace_table(ws)
  elseif ws ~= nil then
    check_workspace("workspace", ws)
  end

  local auth_ways = 0
  for _, name in ipairs { "api_key", "token", "credential" } do
    if options[name] ~= nil then auth_ways = auth_ways + 1 end
  end
  if auth_ways > 1 then
    misuse("give only one of 'api_key', 'token' and 'credential'")
  end
  if options.api_key ~= nil then check_text("api_key", options.api_key) end
  local key_in = options.api_key_in
  if key_in ~= nil then
    check_type("api_key_in", key_in, "string")
    if key_in ~= "header" and key_in ~= "query" and key_in ~= "basic" then
      misuse("option 'api_key_in' must be 'header', 'query' or 'basic', got '" .. key_in .. "'")
    end
    if options.api_key == nil then misuse("option 'api_key_in' needs 'api_key'") end
  end
  local token = options.token
  if token ~= nil and type(token) ~= "string" and not is_callable(token) then
    misuse("option 'token' must be a string or a function, got " .. type(token))
  end
  if type(token) == "string" then check_text("token", token) end
  local credential = options.credential
  if credential ~= nil then
    local kind = type(credential)
    local ok, get = pcall(function() return credential.get_token end)
    if (kind ~= "table" and kind ~= "userdata") or not ok or not is_callable(get) then
      misuse("option 'credential' must be an object with a get_token method")
    end
  end
  if options.user_agent ~= nil then check_text("user_agent", options.user_agent) end
  check_seconds("connect_timeout", options.connect_timeout)
  check_seconds("timeout", options.timeout)
  check_seconds("stall_timeout", options.stall_timeout)
  check_seconds("retry_max_delay", options.retry_max_delay)
  if options.retry_delay ~= nil then
    check_type("retry_delay", options.retry_delay, "number")
    if not (options.retry_delay >= 0 and options.retry_delay < math.huge) then
      misuse("option 'retry_delay' must be a number of seconds >= 0")
    end
  end
  local max_retries = options.max_retries
  if max_retries ~= nil then
    check_type("max_retries", max_retries, "number")
    if not (max_retries >= 0 and max_retries == math.floor(max_retries) and max_retries <= 100) then
      misuse("option 'max_retries' must be a whole number from 0 to 100")
    end
  end
  for _, name in ipairs { "ca_file", "ca_path", "proxy" } do
    if options[name] ~= nil then check_text(name, options[name]) end
  end
  if options.verify_tls ~= nil then check_type("verify_tls", options.verify_tls, "boolean") end
  if options.threads ~= nil then check_type("threads", options.threads, "boolean") end
  if options.log ~= nil and not is_callable(options.log) then
    misuse("option 'log' must be a function, got " .. type(options.log))
  end

  local cloud_name = options.cloud or "public"
  check_type("cloud", cloud_name, "string")
  local cloud = clouds[cloud_name]
  if not cloud then misuse("option 'cloud' must be 'public', 'usgov' or 'china', got '" .. cloud_name .. "'") end
  if options.audience ~= nil then check_text("audience", options.audience) end

  local endpoint = check_endpoint("endpoint", options.endpoint or cloud.endpoint, allow_http)
  local arm_endpoint = check_endpoint("arm_endpoint", options.arm_endpoint or cloud.arm_endpoint,
                                      allow_http)
  if options.proxy ~= nil and auth_ways > 0 then
    check.proxy("proxy", options.proxy, { endpoint, arm_endpoint }, allow_http)
  end

  local self = setmetatable({
    workspace = ws,
    endpoint = endpoint,
    arm_endpoint = arm_endpoint,
    allow_http = allow_http == true,
    query_scope = (options.audience or cloud.audience):gsub("/+$", "") .. "/.default",
    arm_scope = cloud.arm_audience .. "/.default",
    threads = options.threads ~= false,
    -- how cells become values, unless a query says otherwise
    values = {
      datetime = check_datetime("datetime", options.datetime),
      dynamic = check_choice("dynamic", options.dynamic, "text", "decode"),
    },
    policy = {
      max_retries = max_retries or retry.DEFAULTS.max_retries,
      retry_delay = options.retry_delay or retry.DEFAULTS.retry_delay,
      retry_max_delay = options.retry_max_delay or retry.DEFAULTS.retry_max_delay,
    },
    -- the one set of transport settings: queries and the credential's token
    -- requests (given to get_token) both take theirs from here; `timeout`
    -- stays nil unless given (queries and token requests default apart)
    transport = {
      user_agent = options.user_agent and (options.user_agent .. " " .. USER_AGENT) or USER_AGENT,
      connect_timeout = options.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
      timeout = options.timeout,
      stall_timeout = options.stall_timeout or DEFAULT_STALL_TIMEOUT,
      ca_file = options.ca_file, ca_path = options.ca_path, proxy = options.proxy,
      insecure = options.verify_tls == false,
    },
    io = io,
    -- named workspaces' customer ids, by workspace_key; the lookups under way
    customer_ids = {}, lookups = {},
    -- (per_call: transfers get their own; actives: the query under way, per coroutine)
    http = not io.per_call and io.new_http() or nil,
    actives = io.per_call and setmetatable({}, { __mode = "k" }) or nil,
  }, Client)
  if io.per_call then
    -- token requests go over the same transport as the queries
    local new_http, transport = io.new_http, self.transport
    transport.sleep = io.sleep
    transport.perform = function(req)
      local http = new_http()
      req.raw = true
      local response = http:perform(req)
      http:close()
      return response
    end
  end
  -- every secret this client knows or sends: redacted from its errors and log lines
  local secrets = redaction.new()
  self.secrets = secrets
  secrets:add_basic(options.api_key, "")
  if type(token) == "string" then secrets:add(token) end
  -- the logger never breaks a query, and never sees a secret
  local logger = options.log
  self.log = function(level, message)
    if logger then pcall(logger, level, secrets:text(message)) end
  end
  if self.transport.insecure then
    self.log("warn", "TLS verification is off (verify_tls = false): the server is not authenticated")
  end
  -- secrets live in a closure, out of reach of pairs() and tostring
  local api_key, key_mode = options.api_key, key_in or "header"
  -- one token cache, the credential's: a token function becomes a credential
  if is_callable(token) then
    credential, token = credentials._wrap(token, true), nil
  elseif credential then
    credential = credentials._wrap(credential)
  end
  local transport = self.transport
  self.authorize = function(request, scope)
    if api_key then
      if key_mode == "header" then
        request.headers[#request.headers + 1] = "X-Api-Key: " .. api_key
      elseif key_mode == "query" then
        request.url = request.url .. (request.url:find("?", 1, true) and "&" or "?")
          .. "api_key=" .. escape(api_key)
      else
        request.username, request.password = api_key, ""
      end
      return true
    end
    local access
    if type(token) == "string" then
      access = token
    elseif credential then
      -- asked every time: it answers from its cache until that says renew
      local ok, got, err = pcall(credential.get_token, credential, scope, transport)
      if not ok then
        return nil, errors.new { kind = "auth", message = "no token: " .. tostring(got) }
      end
      if got == nil then
        return nil, errors.is_error(err) and err
          or errors.new { kind = "auth", message = "no token: " .. tostring(err) }
      end
      access = got
    else
      return true
    end
    request.headers[#request.headers + 1] = "Authorization: Bearer " .. access
    return true
  end
  -- after a 401: forget the token so the next authorize fetches a new one;
  -- false when there is nothing to renew (a key or a fixed token)
  self.forget = function(scope)
    if api_key or not credential then return false end
    pcall(credential.invalidate, credential, scope)
    return true
  end
  return self
end

--- Makes a client. Raises on an unknown option, a wrong type, or more
-- than one of `api_key`, `token` and `credential`. URLs are read by
-- libcurl's own URL parser, so the host checked is the host libcurl
-- connects to; an endpoint with user information (`user:pw@`), a query, a
-- fragment, whitespace, a backslash or a `.`/`..` path segment raises. A
-- plain `http://` endpoint is accepted only for loopback hosts
-- (`127.0.0.0/8` in any spelling libcurl takes, `localhost`, `[::1]`)
-- unless `allow_http` is true; and a request carrying a key or token goes
-- over plain http through no proxy but a loopback one (the `proxy` option
-- raises here, `http_proxy`/`all_proxy` make the query return a
-- `protocol` error), unless `allow_http`.
-- @tparam table options all optional:
-- @tparam string|table options.workspace the default workspace id for queries (a GUID,
--   or a name of letters, digits, `_`, `.` and `-` that is not `.` or `..`); or
--   `{ subscription = S, resource_group = G, name = N }`, the workspace's Azure
--   resource name (each field one path segment: not `.` or `..`, no `/` or `\`;
--   percent-encoded when sent): resolved once per client to its customer id
--   (Resource Manager's `GET .../workspaces/{N}?api-version=2022-10-01`,
--   `properties.customerId`, with a token for the management audience and the
--   client's transport and retry policy), then queried over the v1 API as an id
--   is (see @{client:query})
-- @tparam string options.endpoint the query API's base URL, `/v1/...` is appended
--   (default: the cloud's, `https://api.loganalytics.azure.com`)
-- @tparam string options.arm_endpoint Resource Manager's base URL, for the lookup of
--   a workspace given by name (default: the cloud's, `https://management.azure.com`)
-- @tparam string options.api_key an API key (the demo workspace's is `DEMO_KEY`)
-- @tparam string options.api_key_in `"header"` (default, `X-Api-Key`), `"query"`
--   (`api_key=` URL parameter) or `"basic"` (HTTP basic auth, the key as user name)
-- @tparam string|function options.token an access token, or a function
--   `token(scope)` returning `access_token[, expires_on]` (epoch seconds) or `nil, err`:
--   the function is made a credential, whose cache keeps the token until five minutes
--   before `expires_on` (half its lifetime when shorter); without `expires_on` it is
--   asked at every query
-- @tparam loganalytics.credentials.credential options.credential a credential from
--   `la.credentials`, or an object of your own with `get_token(self, scope, transport)`
--   returning `access_token, expires_on` (then cached like a token function's, and its
--   `invalidate(self, scope)`, if any, called after a 401). The client asks the
--   credential at every query and keeps no token itself: the credential's cache
--   decides when to renew (at the identity platform's `refresh_in`, else ahead of
--   expiry), and is invalidated once after a 401. The credential's token requests use
--   the client's `proxy`, `ca_file`, `ca_path`, `verify_tls`, `connect_timeout`,
--   `timeout` (default 30 s for a token request) and `stall_timeout` where the
--   credential was given none of its own
-- @tparam string options.cloud `"public"` (default), `"usgov"` or `"china"`: sets
--   `endpoint`, `arm_endpoint` and the token audience together (see
--   @{loganalytics.clouds})
-- @tparam string options.audience the query API's token audience (default: the
--   cloud's, `https://api.loganalytics.io`)
-- @tparam boolean options.allow_http allow a plain `http://` endpoint on a host that
--   is not loopback, and plain-http requests through a proxy that is not loopback
--   (default false)
-- @tparam string options.user_agent a product token put before the module's own
--   `loganalytics-lua/x.y.z (...)`
-- @tparam number options.connect_timeout seconds to connect, TCP and TLS (default 10)
-- @tparam number options.timeout seconds for a whole query, its retries and their
--   waits included: each try gets what is left (default: the query's
--   `server_timeout`, else the service's 180 s, plus 15); in @{client:rows}, the
--   time the loop's body spends between rows is not counted
-- @tparam number options.stall_timeout seconds without a byte once the response has
--   started (default 60)
-- @tparam boolean options.threads decode a large response (over 64 KiB on the wire) on
--   a second thread while this one builds the Lua values (default true; false keeps
--   every query on the calling thread)
-- @tparam number options.max_retries further tries after a retryable failure: HTTP
--   408, 429, 500, 502, 503, 504 and connection failures, never once rows have been
--   delivered (0 to 100, default 3)
-- @tparam number options.retry_delay seconds before the first retry, doubled each
--   time with 80-120% jitter (default 0.8); a `Retry-After` or
--   `x-ms-retry-after-ms` from the service is used instead
-- @tparam number options.retry_max_delay the longest wait before a retry, the
--   service's `Retry-After` included: a longer one is not waited, the failure is
--   returned at once (default 60)
-- @tparam string options.ca_file CA bundle for TLS verification (default: the system's)
-- @tparam string options.ca_path CA directory for TLS verification
-- @tparam boolean options.verify_tls `false` turns TLS verification off, with a
--   `warn` log line saying so (default true)
-- @tparam string options.proxy proxy URL, `http://` when it has no scheme (default:
--   libcurl's environment variables, `http_proxy` (lower case only) for http,
--   `https_proxy`/`HTTPS_PROXY` for https, `all_proxy`/`ALL_PROXY`, and
--   `no_proxy`/`NO_PROXY`). For a plain-http endpoint it must be loopback unless
--   `allow_http`; https requests are tunnelled (CONNECT) through any proxy. Token
--   requests use it too, but managed identity's (IMDS, App Service) never go
--   through a proxy
-- @tparam string|function options.datetime how `datetime` cells are given, unless
--   a query says otherwise: `"string"` (default) the text as sent;
--   `"epoch"` seconds since 1970 (a float); `"epoch_ms"` milliseconds since 1970
--   (an integer, rounded down); `"ticks"` exact 100-ns ticks since 0001-01-01
--   (an integer; Lua 5.3+ only, a misuse elsewhere); or a function given each
--   cell's text, whose result is the value (`nil` gives `la.null`; an error it
--   raises fails the query as `on_row`'s does). The C core converts as it
--   parses (see @{datetime} for the text it reads); nulls stay `la.null`, text
--   that is not a datetime stays a string
-- @tparam string options.dynamic how `dynamic` cells are given, unless a query says
--   otherwise: `"text"` (default) their JSON text; `"decode"` Lua values made by
--   the core's own tokenizer: objects and arrays become plain tables (arrays
--   1-based; an empty object and an empty array are both an empty table), JSON
--   null `la.null`, numbers as a `long` column's (integers exact), strings and
--   booleans as such; text that is not one JSON value (or nests deeper than the
--   Lua stack allows) stays a string
-- @tparam function options.log `log(level, message)`: `"debug"` request lines,
--   `"info"` outcomes with timings, `"warn"` retries and TLS warnings; secrets are
--   never in them (replaced by `[REDACTED]`); a logger that raises is ignored
-- @treturn client
-- @usage local client = la.new{
--   endpoint = "http://127.0.0.1:8080",   -- the local server
--   workspace = "DEMO_WORKSPACE",
--   api_key = "DEMO_KEY",
-- }
function la.new(options)
  return new_client(options, DEFAULT_IO)
end

-- For loganalytics.resty: a client doing its I/O through `io` (see DEFAULT_IO).
function la._new_with_io(options, io)
  return new_client(options, io)
end

function Client:__tostring()
  local ws = self.workspace
  if type(ws) == "table" then ws = ws.name end
  return format("loganalytics.client (%s, workspace %s)", self.endpoint, tostring(ws or "none"))
end

--- What @{client:query} returns: the query's tables with typed rows.
-- Cells are converted by column type: `bool` to a boolean; `int` and
-- `long` to an integer, exact over the whole 64-bit range on Lua 5.3+ (on
-- Lua 5.1, 5.2 and LuaJIT, a number within 2^53 and the exact decimal
-- string beyond); `real` to a float (`"NaN"`, `"Infinity"`, `"-Infinity"`
-- too); `decimal`, `datetime`, `timespan`, `guid`, `string` to the string
-- as sent; `dynamic` to its JSON text; a null of any type to @{null}.
-- @table result
-- @field status `"success"`, or `"partial"` when the service sent rows and
--   an error (see `error`)
-- @field tables an array of tables, in response order (names can repeat); each has
--   `name`, `columns` (an array of `{ name = "TimeGenerated", type = "datetime" }`),
--   `rows` (an array of rows; empty when streamed) and `row_count` (the rows parsed,
--   also when streamed). A row is an array of cells, `#row == #columns`, that also
--   reads by column name: `rows[r][j]` and `rows[r].Computer`. With
--   `shape = "columns"` a table has no `rows`: `values[j]` (also
--   `columns[j].values`) is column j, a @{column} object of `row_count` cells.
-- @field error partial results only: an @{error} (kind `"service"`, code
--   `"PartialError"`, the reason in its `details`)
-- @field statistics the decoded `statistics` object, when asked for with
--   `statistics = true`
-- @field render the decoded `render` object, when asked for with `render = true`
-- @field request_id the service's `x-ms-request-id`
-- @field stopped `true` when an `on_row` handler returned `false`

--- A column of a result made with `shape = "columns"` (`tbl.values[j]`, the
-- same object as `tbl.columns[j].values`): a userdata holding the column's
-- cells in C, compact (a kind byte and 4 or 8 bytes a cell, a repeated
-- string's bytes stored once), a Lua value made when a cell is read, typed as in rows
-- (see @{result}). `col[i]` is cell i (@{null} for a null) and nil for any
-- key that is not an integer from 1 to `#col`; `#col` is the table's
-- `row_count`. `pairs(col)` and `ipairs(col)` go through the cells on Lua 5.2
-- and later; Lua 5.1 and LuaJIT refuse them on a userdata: use
-- `for i = 1, #col do ... col[i] ... end` or `col:totable()`. A column holds its
-- cells itself: it outlives its result, its client and its decoder.
-- @table column
-- @field totable `col:totable()`: a new plain Lua array of the column's values

--- What a failure returns as `err` in `nil, err`: a table whose `tostring`
-- gives one line such as `loganalytics: service error (HTTP 400
-- BadArgumentError): ...`, with the innermost `innererror` message and
-- "(after N tries)" when retries were made. No secret ever appears in it:
-- every secret the client knows (api key, tokens, and those of its
-- credential) is replaced by `[REDACTED]` in every field, also when a server
-- quotes the request back (a gateway's error page with the URL or the
-- Authorization header). @{is_error} tells one from other values.
-- @table error
-- @field kind `"service"` (the API answered with an error), `"auth"` (401/403, or no
--   token), `"network"` (DNS, connect, TLS, reset), `"timeout"` (ours, a 408, or the
--   service's 504), `"protocol"` (a malformed or truncated response, or one that is
--   not a query result) or `"memory"` (memory ran out while the response was read:
--   never retried, and never a result missing rows), `"file"` (@{client:export} could
--   not write a slice's temporary file: disk full, say); and
--   `"busy"`, raised (not returned) by a call made from inside one of the
--   client's own queries (see @{client:query})
-- @field status the HTTP status, when there was a response
-- @field code the service's or identity platform's error code (`"BadArgumentError"`,
--   `"PartialError"`, `"invalid_client"`, ...)
-- @field message the human message
-- @field details as sent by the service, decoded
-- @field innererror as sent by the service, decoded (nested `innererror`s)
-- @field correlation_id from the error body
-- @field request_id from the `x-ms-request-id` header
-- @field retry_after seconds the service asked to wait (`Retry-After` as seconds or
--   an HTTP date, or `x-ms-retry-after-ms`); a wait longer than `retry_max_delay` or
--   than the query's time left is not waited: the error is returned at once with it
-- @field attempts the number of tries, when there were several
-- @field curl_code libcurl's error number, for network, timeout and transfer errors
-- @field error_code the identity platform's numeric AADSTS code, for its errors

--- A client: made by @{new}, one libcurl handle whose keep-alive
-- connections carry successive queries. `tostring(client)` shows the
-- endpoint and workspace, never a key or token.
-- @type client

--- Releases the libcurl handle and its connections; also done by the GC.
-- The client cannot query after it.
-- @function client:close
function Client:close()
  local active = get_active(self)
  if active and not abandoned(active) then busy(self) end
  if active then active.cancel() end
  if self.transfer then self.transfer.cancel() end
  if self.http then self.http:close() end
end

local QUERY_OPTIONS = {
  timespan = true, workspace = true, workspaces = true, resource = true,
  server_timeout = true, statistics = true, render = true, on_row = true, on_progress = true,
  datetime = true, dynamic = true, shape = true,
}

-- Workspaces by name ({ subscription, resource_group, name }): resolved
-- once per client to their customer id by Resource Manager's workspace GET,
-- then queried over the v1 API as an id is. One lookup per name at a time:
-- a query of another coroutine naming it meanwhile waits for that lookup's
-- outcome, its failure included (as a credential's token requests do, see
-- loganalytics.credentials); a failure is not kept, the next query asks again.

local send_raw  -- (a raw request as the client's transfer, with the transfers below)

-- the cache key: the fields are path segments, none holds a '/'
local function workspace_key(ws)
  return ws.subscription .. "/" .. ws.resource_group .. "/" .. ws.name
end

local function describe_workspace(ws)
  return format("workspace '%s' (subscription '%s', resource group '%s')",
    ws.name, ws.subscription, ws.resource_group)
end

-- A copy of err for each query that waited on the lookup it came from.
local function copy_error(err)
  local copy = {}
  for k, v in pairs(err) do copy[k] = v end
  return setmetatable(copy, getmetatable(err))
end

-- The workspace GET: the customer id, or nil, err.
local function look_up_customer_id(self, ws)
  local url = format("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.OperationalInsights/workspaces/%s?api-version=%s",
    self.arm_endpoint, escape(ws.subscription), escape(ws.resource_group), escape(ws.name),
    WORKSPACE_API_VERSION)
  local response, err = send_raw(self, url, nil, self.arm_scope, self.transport.timeout or LOOKUP_TIMEOUT)
  local what = describe_workspace(ws)
  if not response then
    if err.status == 404 then
      err.message = format("%s was not found: %s", what, tostring(err.message))
    elseif err.status == 403 then
      err.message = format("no access to %s: %s", what, tostring(err.message))
    else
      err.message = format("looking up %s: %s", what, tostring(err.message))
    end
    return nil, err
  end
  local doc = core.decode_json(response.body or "")
  local id = type(doc) == "table" and type(doc.properties) == "table" and doc.properties.customerId
  if not check.is_workspace_id(id) then
    return nil, errors.new({ kind = "protocol", status = response.status,
      message = format("Resource Manager's answer for %s has no valid properties.customerId", what),
      request_id = response.headers and response.headers["x-ms-request-id"] }, self.secrets)
  end
  return id
end

-- The customer id of a named workspace: from the client's cache, else (if
-- `lookup`) from a lookup, another coroutine's under way or one of our own.
-- `run`, if any: the lookups that failed in this call (query_many, batch),
-- so its queries naming the workspace share one failure. -> id, or nil, err
-- (nil, nil: not cached and no lookup asked).
local function customer_id(self, ws, lookup, run)
  local key = workspace_key(ws)
  local id = self.customer_ids[key]
  if id or not lookup then return id end
  if run and run[key] then return nil, copy_error(run[key]) end
  local me, is_main = coroutine.running()
  if is_main then me = nil end
  local other = self.lookups[key]
  if other and other.owner and other.owner ~= me then
    while not (other.done or other.abandoned) and core.now() < other.deadline
        and coroutine.status(other.owner) ~= "dead" do
      self.io.sleep(0.01)
    end
    if other.done then
      if other.id then return other.id end
      return nil, copy_error(other.err)
    end
  end
  local mine = { owner = me, deadline = core.now() + (self.transport.timeout or LOOKUP_TIMEOUT) + 1 }
  self.lookups[key] = mine
  local ok, got, err = pcall(look_up_customer_id, self, ws)
  if self.lookups[key] == mine then self.lookups[key] = nil end
  if not ok then
    mine.abandoned = true  -- (a misuse, or "busy": the waiting look up on their own)
    error(got, 0)
  end
  mine.done, mine.id, mine.err = true, got, err
  if got then
    self.customer_ids[key] = got
  elseif run then
    run[key] = err
  end
  return got, err
end

-- The URL and auth scope for a query, from the options and the client; a
-- named workspace's URL needs its customer id (see customer_id: `lookup`,
-- `run`): nil, err when the lookup failed, nil, nil when none was asked.
local function target(self, opts, lookup, run)
  if opts.resource ~= nil then
    local resource = check.resource("resource", opts.resource)
    if opts.workspace ~= nil then misuse("give either 'workspace' or 'resource', not both") end
    return self.endpoint .. "/v1" .. resource .. "/query", self.query_scope
  end
  local ws = opts.workspace
  if type(ws) == "table" then
    check_workspace_table(ws)
  elseif ws ~= nil then
    check_workspace("workspace", ws)
  else
    ws = self.workspace
  end
  if ws == nil then
    misuse("no workspace: give 'workspace' to la.new or to query, or a 'resource'")
  end
  if type(ws) == "table" then
    local id, err = customer_id(self, ws, lookup, run)
    if not id then return nil, err end
    ws = id
  end
  return self.endpoint .. "/v1/workspaces/" .. escape(ws) .. "/query", self.query_scope
end

local function prefer_header(opts)
  local prefs = {}
  local wait = opts.server_timeout
  if wait ~= nil then
    check_type("server_timeout", wait, "number")
    if not (wait >= 1 and wait == math.floor(wait) and wait < 2^31) then
      misuse("option 'server_timeout' must be a whole number of seconds >= 1")
    end
    prefs[#prefs + 1] = format("wait=%d", wait)
  end
  for _, name in ipairs { "statistics", "render" } do
    local v = opts[name]
    if v ~= nil then
      check_type(name, v, "boolean")
      if v then prefs[#prefs + 1] = "include-" .. name .. "=true" end
    end
  end
  if #prefs > 0 then return "Prefer: " .. concat(prefs, ",") end
end

local function check_workspaces(list)
  check_type("workspaces", list, "table")
  local n = #list
  for key in pairs(list) do
    if type(key) ~= "number" or key < 1 or key > n or key ~= math.floor(key) then
      misuse("option 'workspaces' must be an array of workspace ids")
    end
  end
  for i = 1, n do check_workspace("workspaces[" .. i .. "]", list[i]) end
  return n > 0 and list or nil
end

-- What the response table from core says, as the API's result or error
-- (every error redacted with the client's secrets).
local function outcome(response, secrets)
  local status, headers = response.status, response.headers
  if response.transport then
    local t = response.transport
    return nil, errors.new({ kind = t.kind, status = status, message = t.message, curl_code = t.code },
                           secrets)
  end
  if response.parse_error then
    -- memory running out while the rows were read is not the response's fault
    return nil, errors.new({ kind = response.out_of_memory and "memory" or "protocol",
                             status = status, message = response.parse_error,
                             request_id = headers["x-ms-request-id"] }, secrets)
  end
  if not status or status < 200 or status > 299 then
    return nil, errors.from_http(status or 0, headers, response.body, secrets)
  end
  local result = response.result
  if not result then
    return nil, errors.new { kind = "protocol", status = status,
                             message = "the response has no query result" }
  end
  result.request_id = headers["x-ms-request-id"]
  if result.error ~= nil then
    result.error = errors.from_service("service", result.error, status, headers, secrets)
    result.status = "partial"
  else
    result.status = "success"
  end
  return result
end

local is_utf8 = check.is_utf8

-- Checks a query and its options; returns a function making the request
-- table (anew for each try: authorization adds to it) and the auth scope;
-- or nil, err when a named workspace's lookup failed. `route` "search":
-- the workspace's /search path (Basic and Auxiliary logs), which needs a
-- timespan. `run`: false to check only (a named workspace not yet resolved
-- is not looked up, and the request is not to be sent); a table to share
-- failed lookups among the queries of one call (see customer_id).
local function prepare(self, kql, opts, on_row, route, run)
  if getmetatable(self) ~= Client then
    error("loganalytics: use client:query(kql), not client.query(kql)", 3)
  end
  if type(kql) ~= "string" then
    misuse("the query must be a string, got " .. type(kql))
  end
  if kql:find("^%s*$") then misuse("the query must not be empty") end
  if kql:find("%z") then misuse("the query must not contain NUL bytes") end
  if not is_utf8(kql) then misuse("the query must be valid UTF-8") end
  if opts == nil then opts = {} end
  check_type("opts", opts, "table")
  check_known(opts, QUERY_OPTIONS, "query")

  -- (every check first: the lookup, if any, is sent once nothing is misuse)
  local url, scope = target(self, opts, false)
  if route == "search" then
    if opts.resource ~= nil then
      misuse("search needs a workspace ('workspace'), not a resource")
    end
    if opts.timespan == nil then misuse("search needs option 'timespan'") end
  end
  local span
  if opts.timespan ~= nil then
    local ok, text = pcall(timespan.format, opts.timespan)
    if not ok then misuse("option " .. text) end
    span = text
  end
  local workspaces = opts.workspaces ~= nil and check_workspaces(opts.workspaces) or nil
  local prefer = prefer_header(opts)
  on_row = on_row or opts.on_row
  if on_row ~= nil then
    if not is_callable(on_row) then misuse("option 'on_row' must be a function, got " .. type(on_row)) end
    if type(on_row) ~= "function" then
      local callable = on_row
      on_row = function(row, tbl) return callable(row, tbl) end
    end
  end
  if opts.on_progress ~= nil and not is_callable(opts.on_progress) then
    misuse("option 'on_progress' must be a function, got " .. type(opts.on_progress))
  end
  local datetime = check_datetime("datetime", opts.datetime)
  if datetime == nil then datetime = self.values.datetime end
  local dynamic = check_choice("dynamic", opts.dynamic, "text", "decode") or self.values.dynamic
  local shape = check_choice("shape", opts.shape, "rows", "columns")
  if shape == "columns" and on_row ~= nil then
    misuse("option 'shape' = \"columns\" is for a full result, not with 'on_row' or rows()")
  end
  local body = core.query_body(kql, span, workspaces)
  if not url and run ~= false then
    local err
    url, err = target(self, opts, true, run or nil)
    if not url then return nil, err end
  end
  if url and route == "search" then url = url:gsub("/query$", "/search") end
  -- by default the whole request may last the service's wait plus a margin
  local transport = self.transport
  local timeout = transport.timeout or ((opts.server_timeout or SERVICE_DEFAULT_WAIT) + TIMEOUT_MARGIN)
  -- `seconds`: what is left of the query's timeout for this try
  local function request(seconds)
    return {
      url = url,
      headers = { "Content-Type: application/json", "Accept: application/json", prefer },
      body = body,
      user_agent = transport.user_agent,
      connect_timeout = transport.connect_timeout,
      timeout = seconds,
      stall_timeout = transport.stall_timeout,
      ca_file = transport.ca_file, ca_path = transport.ca_path, proxy = transport.proxy,
      insecure = transport.insecure,
      allow_http = self.allow_http,
      threads = self.threads,
      on_row = on_row,
      datetime = datetime, dynamic = dynamic, shape = shape,
    }
  end
  return request, scope, timeout
end

-- A URL fit for a log line: no api_key parameter.
local function redact(url)
  return (url:gsub("([?&]api_key=)[^&]*", "%1REDACTED"))
end

-- What authorize put on a request (a key, a token, basic auth) is secret
-- from then on: servers may quote it back in any answer.
local function remember_sent(secrets, req)
  for _, line in ipairs(req.headers) do
    local value = line:match("^[Aa]uthorization:%s*[Bb]earer%s+(.-)%s*$")
      or line:match("^[Xx]%-[Aa]pi%-[Kk]ey:%s*(.-)%s*$")
    if value then secrets:add(value, true) end
  end
  if req.username then secrets:add_basic(req.username, req.password) end
end

local function describe(response)
  if response.transport then return response.transport.message end
  return "HTTP " .. tostring(response.status)
end

-- on_progress is called at least this often while a transfer is under way;
-- the C core's steps and waits never block longer, so a host's interrupt
-- (Ctrl-C in the lua interpreter) gets through within this time too
local STEP_MS = 100

-- Waits `seconds` before a retry; with on_progress, in steps of STEP_MS
-- calling it between them, so a spinner keeps turning.
local function pause(sleep, seconds, on_progress)
  if not on_progress then return sleep(seconds) end
  local deadline = core.now() + seconds
  while true do
    local left = deadline - core.now()
    if left <= 0 then return end
    sleep(math.min(left, STEP_MS / 1000))
    on_progress()
  end
end

-- One transfer. With on_progress, it is stepped (as core's perform does
-- inside) so the caller gets control between waits, e.g. for a spinner; an
-- error in on_progress cancels the transfer and is re-raised.
local function perform(http, req, on_progress)
  if not on_progress then return http:perform(req) end
  http:start(req)
  local ok, response = pcall(function()
    while true do
      local response = http:step(STEP_MS)
      if response then return response end
      on_progress()
    end
  end)
  if not ok then
    http:cancel()
    error(response, 0)
  end
  return response
end

-- One transfer per client.

-- A client has one libcurl handle and one parser: one transfer at a time.
-- A client's transfers. self.http is the client's handle, held by
-- self.transfer (a query, or a rows() loop) while one uses it. self.active
-- is the query under way: a call then comes from inside it (its on_row or
-- on_progress, or a coroutine suspended there) and is refused ("busy"). A
-- rows() loop is never active: no code of the caller's runs inside its
-- steps, and between two rows the loop's body (or on_progress) may call
-- anything. A call while a rows() loop holds the handle runs on a handle of
-- its own: the loop is not touched, and goes on when asked for its next row.
-- `owner` is a weak ref to the coroutine that runs a query (if not the main
-- one), `iterator` one to a rows() loop's iterator; `cancel` ends it.
local weak_values = { __mode = "v" }

function get_active(self)
  local actives = self.actives
  if actives then return actives[coroutine.running() or actives] end
  return self.active
end

function busy(self)
  error(errors.new { kind = "busy", message = tostring(self)
    .. " is busy: a query or rows() was called from inside its own transfer (on_row, on_progress,"
    .. " or a coroutine suspended there); one transfer at a time runs its code per client" }, 0)
end

-- A transfer nobody can move on any more: a rows() loop whose iterator is
-- garbage (on Lua 5.4 a loop left early is closed at once; older Lua
-- leaves that to this check), or a query whose coroutine, suspended in
-- on_progress, is garbage.
function abandoned(transfer)
  local function gone()
    local ref = transfer.iterator or transfer.owner
    return ref ~= nil and ref[1] == nil
  end
  if gone() then return true end
  if not (transfer.iterator or transfer.owner) then return false end
  collectgarbage()  -- only here: the loop may just have become unreachable
  return gone()
end

-- Gives `transfer` a handle (transfer.http), or raises a "busy" error.
local function claim(self, transfer)
  local active = get_active(self)
  if active then
    if not abandoned(active) then busy(self) end
    active.cancel()
  end
  local holder = self.transfer
  if holder and abandoned(holder) then holder.cancel() end
  if self.io.per_call then
    transfer.http, transfer.own_handle = self.io.new_http(), true
  elseif self.transfer then
    -- a rows() loop between two rows holds the client's handle
    transfer.http, transfer.own_handle = self.io.new_http(), true
  else
    transfer.http = self.http
    self.transfer = transfer
  end
  if transfer.query then
    local co, main = coroutine.running()
    if co and not main then transfer.owner = setmetatable({ co }, weak_values) end
  end
end

-- `transfer` runs its code (true) or has stopped (false), see self.active.
-- A client doing per-call I/O (cosockets) runs queries of many requests at
-- once: each coroutine has its own active query.
local function set_active(self, transfer, on)
  local actives = self.actives
  if actives then
    local key = coroutine.running() or actives
    if on then
      actives[key] = transfer
    elseif actives[key] == transfer then
      actives[key] = nil
    end
  elseif on then
    self.active = transfer
  elseif self.active == transfer then
    self.active = nil
  end
end

local function release(self, transfer)
  set_active(self, transfer, false)
  if self.transfer == transfer then self.transfer = nil end
  if transfer.own_handle and transfer.http then
    transfer.http:close()
    transfer.http = nil
  end
end

-- A query's transfer (query, search, a $batch request): it holds a handle
-- and is the client's active transfer until released. Cancelling it
-- cancels its handle, or calls `stop` (a run of many transfers: what it
-- runs is not on one handle).
local function start_query_transfer(self, stop)
  local transfer = { query = true }
  transfer.cancel = function()
    if stop then
      stop()
    elseif transfer.http then
      transfer.http:cancel()
    end
    release(self, transfer)
  end
  claim(self, transfer)
  set_active(self, transfer, true)
  return transfer
end

-- Tries and retries.

-- The state of one query's tries (query and rows alike): the query's
-- deadline, the tries so far, the token renewal.
local function new_tries(scope, timeout, on_progress, delivered)
  return { attempt = 1, renewed = false, scope = scope, deadline = core.now() + timeout,
           on_progress = on_progress, delivered = delivered }
end

-- What is left of the query's timeout for the next try (never 0: that
-- would mean no limit).
local function time_left(tries)
  return math.max(tries.deadline - core.now(), 0.001)
end

-- The one retry policy, after each try's response: the seconds to wait
-- before another try (0 for a token renewal), or nil when this response is
-- the outcome. A refused token is renewed once (not counted as a retry);
-- nothing is retried once rows have reached the caller (they would arrive
-- twice); a wait longer than retry_max_delay or than the query's time left
-- is not waited: the response's error (with its retry_after) is the
-- outcome, now. The caller waits: next_try by sleeping, a group of
-- transfers (loganalytics.many) by starting the try later.
local function retry_decision(self, tries, response)
  -- (tries.forget: a group's, which renews once for all its transfers)
  if response.status == 401 and not tries.renewed and (tries.forget or self.forget)(tries.scope) then
    tries.renewed = true
    return 0
  end
  local policy, log = self.policy, self.log
  if tries.attempt > policy.max_retries or not retry.retryable(response) or tries.delivered() then
    return nil
  end
  local wait = retry.wait(policy, tries.attempt, response, tries.deadline - core.now())
  if not wait then
    log("warn", ("no retry after %s: the wait is longer than retry_max_delay or the time left")
      :format(describe(response)))
    return nil
  end
  log("warn", ("retry %d of %d in %s s after %s"):format(tries.attempt, policy.max_retries,
    numbers.format("%.2f", wait), describe(response)))
  tries.attempt = tries.attempt + 1
  return wait
end

-- retry_decision for one transfer at a time: true when another try is due
-- (the wait is done here), false when this response is the outcome.
local function next_try(self, tries, response)
  local wait = retry_decision(self, tries, response)
  if not wait then return false end
  if wait > 0 then pause(self.io.sleep, wait, tries.on_progress) end
  return true
end

-- Sends until next_try says the response is the outcome. Returns the
-- core's response table plus the number of tries, or nil, err.
local function send_with_retries(self, request, tries)
  local log = self.log
  while true do
    local req = request(time_left(tries))
    local authorized, err = self.authorize(req, tries.scope)
    if not authorized then return nil, self.secrets:error(err) end
    remember_sent(self.secrets, req)
    local method = req.method or "POST"
    log("debug", method .. " " .. redact(req.url))
    local started = core.now()
    local response = perform(tries.http, req, tries.on_progress)
    log("info", ("%s %s: %s in %s s"):format(method, redact(req.url), describe(response),
      numbers.format("%.3f", core.now() - started)))
    if not next_try(self, tries, response) then return response, tries.attempt end
  end
end

-- outcome(), with the number of tries in the error when there were several.
local function final(response, attempts, secrets)
  local result, err = outcome(response, secrets)
  if err and attempts and attempts > 1 then
    err.attempts = attempts  -- tostring(err) says "after N tries"
  end
  return result, err
end

--- Runs a KQL query: `POST {endpoint}/v1/workspaces/{id}/query` (or
-- `/v1{resource}/query`). A workspace given by name (`{ subscription,
-- resource_group, name }`) is first resolved to its customer id, once per
-- client and name (see @{new}'s `workspace`): a lookup that fails is the
-- query's `err` (`"service"` with status 404 when Resource Manager has no
-- such workspace, `"auth"` for 401/403, the message naming the workspace;
-- `"protocol"` when its answer has no valid `properties.customerId`), and
-- is not kept: the next query asks again. Misuse raises;
-- failures return `nil, err`, after the retries the client's policy allows.
--
-- With `on_row`, the handler is called for each row as it is parsed, while
-- the body is still arriving, and no row is kept: `result.tables[i]` has
-- `name`, `columns` and `row_count` but empty `rows`. Returning `false`
-- from the handler stops the transfer at once (the result then has
-- `stopped = true`); an error raised in it aborts the transfer and is
-- re-raised from `query` with its original value.
--
-- Calling `query` or `rows` on a client from inside one of its queries
-- (from `on_row` or `on_progress`, or from a coroutine that yielded there)
-- raises an @{error} of kind `"busy"` naming the client; the query under
-- way goes on. A call while a `rows()` loop of the client waits between two
-- rows runs on a connection of its own and leaves the loop untouched.
--
-- The client's `timeout` bounds the whole query, retries and their waits
-- included: each try gets what is left of it.
-- @function client:query
-- @tparam string kql the query
-- @tparam[opt] table opts all optional:
-- @tparam string|number|table opts.timespan an ISO 8601 duration or interval
--   (`"PT1H"`, `"2024-01-01T00:00:00Z/PT1H"`), seconds back from now, or a table with
--   two of `start`, `finish`, `duration` (see @{loganalytics.timespan.format});
--   omitted: the query's own time filter
-- @tparam string|table opts.workspace overrides the client's workspace (a GUID or a
--   name of letters, digits, `_`, `.` and `-`, not `.` or `..`; or `{ subscription =
--   S, resource_group = G, name = N }`, resolved as @{new}'s `workspace`)
-- @tparam {string,...} opts.workspaces additional workspaces (body `"workspaces"`),
--   each like `workspace`
-- @tparam string opts.resource an Azure resource id, `/subscriptions/...`, for a
--   resource-centric query (not with `workspace`): `/`-separated non-empty segments,
--   none `.` or `..`, each percent-encoded when sent
-- @tparam number opts.server_timeout whole seconds the service may run the query
--   (`Prefer: wait=N`)
-- @tparam boolean opts.statistics `true` to get `result.statistics`
-- @tparam boolean opts.render `true` to get `result.render`
-- @tparam function opts.on_row `on_row(row, tbl)`: stream the rows instead of
--   keeping them (`tbl` is the row's table: `tbl.name`, `tbl.columns`)
-- @tparam string opts.shape `"rows"` (default) or `"columns"`: each table gets
--   `values[j]` (the same object as `columns[j].values`), column j's cells kept
--   compact in C, a Lua value made when a cell is read (`col[i]`, `#col`,
--   `col:totable()`; see @{column}), typed as rows are; no `rows`. For a full
--   result only: not with `on_row` nor in `rows()` or `export`
-- @tparam function opts.on_progress called with no arguments at least every 100 ms
--   while the transfer runs or a retry waits (a spinner, say); an error raised in
--   it cancels the query and is re-raised
-- @tparam string|function opts.datetime overrides the client's `datetime` (see @{new}):
--   `"string"`, `"epoch"`, `"epoch_ms"`, `"ticks"` or a function
-- @tparam string opts.dynamic overrides the client's `dynamic`: `"text"` or `"decode"`
-- @treturn[1] result
-- @treturn[2] nil
-- @treturn[2] error err
-- @usage local result, err = client:query("Heartbeat | summarize count() by Computer",
--   { timespan = "P1D" })
-- local n = 0
-- client:query("AzureActivity", { on_row = function(row) n = n + 1 end })
local function run_query(self, kql, opts, route)
  local pace = self.io and self.io.pace
  if pace then pace() end  -- (a cosocket client waits for a turn of the loop with time left)
  local delivered = false
  local on_row = type(opts) == "table" and opts.on_row or nil
  local counted
  if on_row ~= nil and is_callable(on_row) then
    counted = function(row, tbl)
      delivered = true
      return on_row(row, tbl)
    end
  end
  local request, scope, timeout = prepare(self, kql, opts, counted, route)
  if not request then return nil, scope end
  local transfer = start_query_transfer(self)
  local tries = new_tries(scope, timeout, type(opts) == "table" and opts.on_progress or nil,
                          function() return delivered end)
  tries.http = transfer.http
  local ok, response, attempts = pcall(send_with_retries, self, request, tries)
  release(self, transfer)
  if not ok then error(response, 0) end
  if not response then return nil, attempts end
  return final(response, attempts, self.secrets)
end

function Client:query(kql, opts)
  return run_query(self, kql, opts, "query")
end

--- Runs a KQL query over a workspace's Basic or Auxiliary logs tables:
-- `POST {endpoint}/v1/workspaces/{id}/search`, body `{ query, timespan }`.
-- The same options, result and errors as @{client:query}, but `timespan` is
-- required (misuse without it) and the target must be a workspace (an id, or
-- one given by name), not a `resource`. Those tables take a subset of
-- KQL: a single table, then `where`, `extend`, `project` (and its variants),
-- `parse` and `take`/`limit`; no joins, no `summarize`.
-- @function client:search
-- @tparam string kql the query
-- @tparam table opts as @{client:query}'s, `timespan` required
-- @treturn[1] result
-- @treturn[2] nil
-- @treturn[2] error err
-- @usage local result = client:search("AppTraces_CL | where Level == 'Error'",
--   { timespan = "P1D" })
function Client:search(kql, opts)
  return run_query(self, kql, opts, "search")
end

--- The state of a @{client:rows} loop, its second value: what the query
-- came to once the loop has ended. Also the loop's to-be-closed value on
-- Lua 5.4.
-- @table rows_loop
-- @field status `"running"` while rows may come; then `"success"`,
--   `"partial"` (every row was given, but the service reported an error:
--   see `error`), `"failed"` (the loop raised `error`) or `"closed"` (left
--   early, or `close` was called)
-- @field error the @{error} of a partial or failed query
-- @field result the query's @{result} once it succeeded or was partial, with
--   each table's `name`, `columns` and `row_count` (rows are not kept)
-- @field close `loop:close()` ends the transfer now if it still runs (on Lua
--   5.1, 5.2, 5.3 and LuaJIT, call it when leaving a loop early if the
--   iterator stays reachable; else the client's next call finds the loop
--   abandoned once its iterator is garbage)
local Loop = {}
Loop.__index = Loop
Loop.__name = "loganalytics.rows_loop"
-- (close is each loop's own closure: a weak-keyed table of them would keep
-- every loop alive on Lua 5.1 and LuaJIT, which have no ephemerons)
function Loop.__close(loop) loop.close() end

--- Iterates over the rows of a query as they arrive, keeping none:
-- `for row, tbl in client:rows(kql, opts) do body end`.
-- The transfer moves forward only as rows are taken (libcurl's multi
-- interface), so memory stays bounded by one chunk of rows, and `timeout`
-- counts only the time spent getting rows, not the time the loop's body
-- spends between them (`stall_timeout` still guards the network). A
-- failure raises the @{error} object `query` would return (catch it with
-- `pcall`), after the rows that came before it.
--
-- A partial result (the service sent rows and an error) is not raised by
-- default: the loop's state, the second value returned, says so once the
-- loop has ended (`loop.status == "partial"`, `loop.error`); with
-- `on_partial = "raise"`, its error is raised after the last row.
--
-- Leaving the loop early is fine: on Lua 5.4 the loop's to-be-closed value
-- cancels the transfer at once; on older Lua, `loop:close()` does, or the
-- client's next call once the iterator is garbage. Between two rows the
-- loop's body may use the client: another query or rows() then runs on a
-- connection of its own, and the loop goes on where it was.
-- @function client:rows
-- @tparam string kql the query
-- @tparam[opt] table opts @{client:query}'s options but `on_row`, and:
-- @tparam string opts.on_partial `"keep"` (default: the loop ends normally,
--   see the loop's state) or `"raise"` (raise the partial result's error after
--   its last row)
-- @return a generic-for iterator giving `row, tbl`
-- @treturn rows_loop the loop's state
-- @usage for row in client:rows("Heartbeat | take 100") do print(row.Computer) end
-- local next_row, loop = client:rows("Heartbeat")
-- for row in next_row, loop, nil, loop do print(row.Computer) end
-- if loop.status == "partial" then io.stderr:write(tostring(loop.error), "\n") end
function Client:rows(kql, opts)
  local pace = self.io and self.io.pace
  if pace then pace() end
  if type(opts) == "table" and opts.on_row ~= nil then
    misuse("option 'on_row' is not for client:rows (it is the iterator)")
  end
  local on_partial = "keep"
  if type(opts) == "table" and opts.on_partial ~= nil then
    on_partial = opts.on_partial
    if on_partial ~= "keep" and on_partial ~= "raise" then
      misuse("option 'on_partial' must be 'keep' or 'raise', got " .. tostring(on_partial))
    end
    local rest = {}  -- query's options, for prepare
    for k, v in pairs(opts) do if k ~= "on_partial" then rest[k] = v end end
    opts = rest
  end
  local queue, head = {}, 1
  local delivered = false
  local request, scope, timeout = prepare(self, kql, opts, function(row, tbl)
    delivered = true
    queue[#queue + 1] = row
    queue[#queue + 1] = tbl
  end)
  if not request then error(scope, 0) end  -- a named workspace's failed lookup
  local log = self.log
  local http  -- the loop's handle (claim gives it)
  local on_progress = type(opts) == "table" and opts.on_progress or nil
  local loop = setmetatable({ status = "running" }, Loop)
  local tries = new_tries(scope, timeout, on_progress, function() return delivered end)
  local transfer, raise_after = {}, nil

  -- the loop is over: its state says how; an error waits for the queued rows
  local function ended(status, result, err)
    loop.status, loop.result, loop.error = status, result, err
    release(self, transfer)
  end
  transfer.cancel = function()
    if loop.status == "running" then
      if http then http:cancel() end
      ended("closed")
    end
  end
  loop.close = transfer.cancel

  local function start()
    local req = request(time_left(tries))
    req.pull = true  -- a few rows per step: the transfer waits for the loop
    local authorized, err = self.authorize(req, scope)
    if not authorized then
      err = self.secrets:error(err)
      ended("failed", nil, err)
      error(err, 0)
    end
    remember_sent(self.secrets, req)
    log("debug", "POST " .. redact(req.url))
    http:start(req)
  end
  local function iterate()
    while true do
      if queue[head] ~= nil then
        local row, tbl = queue[head], queue[head + 1]
        queue[head], queue[head + 1] = nil, nil
        head = head + 2
        return row, tbl
      end
      if loop.status ~= "running" then
        local err = raise_after
        raise_after = nil
        if err then error(err, 0) end
        return nil
      end
      queue, head = {}, 1
      -- (no code of the caller's runs inside a step: a rows() loop is
      -- never the client's active transfer, see claim)
      local response = http:step(STEP_MS)
      if not response then
        if on_progress then on_progress() end
      elseif next_try(self, tries, response) then
        start()
      else
        local result, err = final(response, tries.attempt, self.secrets)
        if not result then
          ended("failed", nil, err)
          raise_after = err
        else
          ended(result.status, result, result.error)
          if result.status == "partial" and on_partial == "raise" then raise_after = result.error end
        end
      end
    end
  end
  transfer.iterator = setmetatable({ iterate }, weak_values)
  claim(self, transfer)
  http = transfer.http
  local ok, err = pcall(start)
  if not ok then
    if loop.status == "running" then ended("failed", nil, err) end
    error(err, 0)
  end
  return iterate, loop, nil, loop
end

-- A raw request to `url` with the client's auth (for `scope`, default the
-- query API's), transport and retry policy, as the client's transfer: a
-- POST of `body` (JSON), or a GET when `body` is nil; `timeout` bounds it,
-- retries included (default: the client's, else the service's wait plus a
-- margin). The response (2xx, body kept whole), or nil, err. ($batch
-- requests; the workspace lookup.)
function send_raw(self, url, body, scope, timeout)
  local transfer = start_query_transfer(self)
  local transport = self.transport
  local function request(seconds)
    return {
      url = url, body = body, raw = true, method = body == nil and "GET" or nil,
      headers = body and { "Content-Type: application/json", "Accept: application/json" }
        or { "Accept: application/json" },
      user_agent = transport.user_agent, connect_timeout = transport.connect_timeout,
      timeout = seconds, stall_timeout = transport.stall_timeout,
      ca_file = transport.ca_file, ca_path = transport.ca_path, proxy = transport.proxy,
      insecure = transport.insecure, allow_http = self.allow_http,
    }
  end
  local tries = new_tries(scope or self.query_scope,
                          timeout or transport.timeout or (SERVICE_DEFAULT_WAIT + TIMEOUT_MARGIN),
                          nil, function() return false end)
  tries.http = transfer.http
  local ok, response, attempts = pcall(send_with_retries, self, request, tries)
  release(self, transfer)
  if not ok then error(response, 0) end
  if not response then return nil, attempts end
  if response.transport or not response.status or response.status < 200 or response.status > 299 then
    local _, err = final(response, attempts, self.secrets)
    return nil, err
  end
  return response
end

--- Runs many queries at once on one connection pool (HTTP/2 multiplexed
-- where the server offers it): at most `concurrency` in flight, each with
-- the client's retry policy (its `Retry-After` honoured); a 429 holds back
-- every query not yet started until its `Retry-After` has passed, so the
-- whole group slows down. The token is the client's (its credential's
-- cache answers every query; a 401 renews it once per query). The run is
-- the client's transfer: calling the client from `on_result` (or from a
-- query's `on_row`) raises "busy". Misuse in any query raises before any
-- is sent; each query's failure is its own `err`. A workspace given by name
-- is looked up once for all the queries naming it, before they start (a
-- failed lookup is the `err` of each of them).
-- @function client:query_many
-- @tparam {table,...} list queries: each `{ kql, opts }` or
--   `{ kql = "...", <opts fields> }`, opts as @{client:query}'s
-- @tparam[opt] table opts
-- @tparam integer opts.concurrency queries in flight at most (1 to 100, default 5:
--   the service's per-user limit)
-- @tparam function opts.on_result `on_result(i, result, err)` as each query ends
--   (in the order they end); an error raised in it cancels the rest and is re-raised
-- @treturn {table,...} one `{ result = result, err = err }` per query, in the order given
-- @usage local answers = client:query_many({ { "Heartbeat | take 1" },
--   { kql = "Usage | take 1", timespan = "P1D" } }, { concurrency = 5 })
-- for i, a in ipairs(answers) do print(i, a.result and #a.result.tables[1].rows, a.err) end

--- Exports the rows of one query over a long timespan, past the service's
-- caps (500,000 rows, about 64 MB per answer): the same KQL runs over
-- consecutive time slices `[start, end)` of the timespan (the API's
-- `timespan`, the KQL untouched), `concurrency` slices at once. A slice
-- whose answer is cut at a cap (the service's PartialError naming
-- E_QUERY_RESULT_SET_TOO_LARGE) is halved and its two halves run in its
-- place, and later slices start at the narrower width (the first slices run
-- one at a time until one comes back whole, so no more than one is cut
-- while the width is found). Every row comes
-- once, in slice order, to `on_row`, in flat memory: each answer is
-- written to a temporary file, checked, then read back; at most
-- `concurrency` slices wait on disk. Temporary files are removed, also on
-- failure.
--
-- **Only for queries whose rows are records** (filters, projections,
-- `extend`): each slice is a query of its own, so a `summarize`, `count`,
-- `top`, `take` or `join` over the whole range gives one answer per slice,
-- not one for the range.
-- @function client:export
-- @tparam string kql the query
-- @tparam table opts @{client:query}'s options but `timespan`, `on_row`, `on_progress`, and:
-- @tparam string|table opts.timespan required, with a start and an end: `"start/end"`
--   (ISO 8601; or `"start/duration"`) or `{ start = , finish = }` (see
--   @{loganalytics.timespan.interval})
-- @tparam function opts.on_row required: `on_row(row, tbl)` for each row (`tbl`: the
--   same table object in every slice for a table of the same name and columns); returning
--   `false` stops the export (the summary then has `stopped = true`); an error
--   raised in it stops the export and is re-raised
-- @tparam integer opts.concurrency slices in flight or waiting on disk (1 to 16, default 4)
-- @tparam number|string opts.slice the first slices' width, seconds or an ISO 8601
--   duration (default: a 16th of the timespan)
-- @tparam number|string opts.min_slice the narrowest slice, seconds or a duration
--   (default 1 s): a cut slice that would be halved below it fails the export
--   with an error naming the slice
-- @tparam function opts.on_progress `on_progress(done_slices, total_slices, rows)` after
--   each slice handed over (total_slices grows when slices are halved)
-- @treturn[1] table `{ rows = N, slices = N, splits = N }` (and `stopped = true`)
-- @treturn[2] nil
-- @treturn[2] error err: the first slice's failure (its timespan in the message), or
--   the failed lookup of a workspace given by name (done once, before any slice)
-- @usage local n = 0
-- local summary, err = client:export("Events | where Level == 'Error'", {
--   timespan = "2025-12-01T00:00:00Z/2026-01-01T00:00:00Z",
--   on_row = function(row) n = n + 1 end })

--- Runs up to 10 queries per HTTP request over `POST {endpoint}/v1/$batch`
-- (a longer list is sent as several batches, one after another). Answers
-- are matched to their requests by id whatever their order, also those
-- whose body comes as a JSON string; each is typed as @{client:query}'s
-- result, or its error as query's. The service supports `$batch` until
-- 2028-03-31: @{client:query_many} is the lasting way to run many queries.
-- Each query targets a workspace (an id, or one given by name, resolved
-- first as @{client:query}'s; not `resource`, no `on_row`); a query whose
-- workspace lookup failed gets that error as its `err` and is not sent.
-- @function client:batch
-- @tparam {table,...} list as @{client:query_many}'s
-- @treturn[1] {table,...} one `{ result = result, err = err }` per query, in the order given
-- @treturn[2] nil
-- @treturn[2] error err: a batch request that failed as a whole

-- query_many, export and batch (loganalytics/many.lua), on this query path.
require("loganalytics.many").install(Client, {
  prepare = prepare, final = final, outcome = outcome, retry_decision = retry_decision,
  new_tries = new_tries, time_left = time_left, release = release,
  start_query_transfer = start_query_transfer,
  remember_sent = remember_sent, redact = redact, STEP_MS = STEP_MS,
  send = send_raw,
})

return la
