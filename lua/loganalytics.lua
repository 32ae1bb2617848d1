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

local type, pairs, ipairs, tostring, select, pcall, error, setmetatable =
  type, pairs, ipairs, tostring, select, pcall, error, setmetatable
local format, concat = string.format, table.concat

local la = {
  --- The module's version, `"0.1.0"`.
  _VERSION = "0.1.0",
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
}

local ARM_API_VERSION = "2017-10-01"
-- tokens from functions that give expires_on are renewed this long before it
local TOKEN_EARLY_RENEWAL = 300

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
Client.__name = "loganalytics.client"

local CLIENT_OPTIONS = {
  workspace = true, endpoint = true, arm_endpoint = true, api_key = true,
  api_key_in = true, token = true, credential = true, allow_http = true,
  user_agent = true, connect_timeout = true, timeout = true, cloud = true, audience = true,
  stall_timeout = true, max_retries = true, retry_delay = true, retry_max_delay = true,
  ca_file = true, ca_path = true, verify_tls = true, proxy = true, log = true,
  threads = true,
}

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
--   `{ subscription = S, resource_group = G, name = N }` to query through Azure
--   Resource Manager (each field one path segment: not `.` or `..`, no `/` or `\`;
--   percent-encoded when sent)
-- @tparam string options.endpoint the query API's base URL, `/v1/...` is appended
--   (default: the cloud's, `https://api.loganalytics.azure.com`)
-- @tparam string options.arm_endpoint Resource Manager's base URL (default: the
--   cloud's, `https://management.azure.com`)
-- @tparam string options.api_key an API key (the demo workspace's is `DEMO_KEY`)
-- @tparam string options.api_key_in `"header"` (default, `X-Api-Key`), `"query"`
--   (`api_key=` URL parameter) or `"basic"` (HTTP basic auth, the key as user name)
-- @tparam string|function options.token an access token, or a function
--   `token(scope)` returning `access_token[, expires_on]` (epoch seconds; the token is
--   then reused until five minutes before it) or `nil, err`
-- @tparam loganalytics.credentials.credential options.credential an object with
--   `get_token(self, scope)` returning `access_token, expires_on`, e.g. from
--   `la.credentials`; its tokens are renewed ahead of expiry, and once after a 401
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
-- @tparam number options.timeout seconds for a whole request (default: the query's
--   `server_timeout`, else the service's 180 s, plus 15)
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
-- @tparam number options.retry_max_delay cap on the computed wait (default 60)
-- @tparam string options.ca_file CA bundle for TLS verification (default: the system's)
-- @tparam string options.ca_path CA directory for TLS verification
-- @tparam boolean options.verify_tls `false` turns TLS verification off, with a
--   `warn` log line saying so (default true)
-- @tparam string options.proxy proxy URL, `http://` when it has no scheme (default:
--   libcurl's environment variables, `http_proxy` (lower case only) for http,
--   `https_proxy`/`HTTPS_PROXY` for https, `all_proxy`/`ALL_PROXY`, and
--   `no_proxy`/`NO_PROXY`). For a plain-http endpoint it must be loopback unless
--   `allow_http`; https requests are tunnelled (CONNECT) through any proxy
-- @tparam function options.log `log(level, message)`: `"debug"` request lines,
--   `"info"` outcomes with timings, `"warn"` retries and TLS warnings; secrets are
--   never in them; a logger that raises is ignored
-- @treturn client
-- @usage local client = la.new{
--   endpoint = "http://127.0.0.1:8080",   -- the local server
--   workspace = "DEMO_WORKSPACE",
--   api_key = "DEMO_KEY",
-- }
function la.new(options)
  if type(options) ~= "table" then
    error("loganalytics: la.new expects an options table, got " .. type(options), 2)
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
    connect_timeout = options.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
    timeout = options.timeout,
    stall_timeout = options.stall_timeout or DEFAULT_STALL_TIMEOUT,
    threads = options.threads ~= false,
    policy = {
      max_retries = max_retries or retry.DEFAULTS.max_retries,
      retry_delay = options.retry_delay or retry.DEFAULTS.retry_delay,
      retry_max_delay = options.retry_max_delay or retry.DEFAULTS.retry_max_delay,
    },
    tls = { ca_file = options.ca_file, ca_path = options.ca_path, proxy = options.proxy,
            insecure = options.verify_tls == false },
    user_agent = options.user_agent and (options.user_agent .. " " .. USER_AGENT) or USER_AGENT,
    http = core.new(),
  }, Client)
  -- the logger never breaks a query, and never sees a secret (see redact)
  local logger = options.log
  self.log = function(level, message)
    if logger then pcall(logger, level, message) end
  end
  if self.tls.insecure then
    self.log("warn", "TLS verification is off (verify_tls = false): the server is not authenticated")
  end
  -- secrets live in a closure, out of reach of pairs() and tostring
  local api_key, key_mode = options.api_key, key_in or "header"
  local cached = {}
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
    elseif token or credential then
      local entry = cached[scope]
      if entry and entry.expires_on - TOKEN_EARLY_RENEWAL > os.time() then
        access = entry.token
      else
        local ok, got, expires_on
        if token then
          ok, got, expires_on = pcall(token, scope)
        else
          ok, got, expires_on = pcall(credential.get_token, credential, scope)
        end
        if ok and got == nil and errors.is_error(expires_on) then
          return nil, expires_on  -- a credential's own error says it best
        end
        if not ok or type(got) ~= "string" or got == "" or got:find("[%z\r\n]") then
          local why = not ok and tostring(got)
            or (got == nil and expires_on ~= nil and tostring(expires_on))
            or "the token provider returned no usable token"
          return nil, errors.new { kind = "auth", message = "no token: " .. why }
        end
        access = got
        -- without an expiry the provider is asked again next time
        cached[scope] = type(expires_on) == "number" and { token = got, expires_on = expires_on } or nil
      end
    else
      return true
    end
    request.headers[#request.headers + 1] = "Authorization: Bearer " .. access
    return true
  end
  -- after a 401: forget the token so the next authorize fetches a new one;
  -- false when there is nothing to renew (a key or a fixed token)
  self.forget = function(scope)
    if api_key or type(token) == "string" or (not token and not credential) then return false end
    cached[scope] = nil
    if credential then
      local ok, invalidate = pcall(function() return credential.invalidate end)
      if ok and is_callable(invalidate) then pcall(invalidate, credential, scope) end
    end
    return true
  end
  return self
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
--   reads by column name: `rows[r][j]` and `rows[r].Computer`.
-- @field error partial results only: an @{error} (kind `"service"`, code
--   `"PartialError"`, the reason in its `details`)
-- @field statistics the decoded `statistics` object, when asked for with
--   `statistics = true`
-- @field render the decoded `render` object, when asked for with `render = true`
-- @field request_id the service's `x-ms-request-id`
-- @field stopped `true` when an `on_row` handler returned `false`

--- What a failure returns as `err` in `nil, err`: a table whose `tostring`
-- gives one line such as `loganalytics: service error (HTTP 400
-- BadArgumentError): ...`, with the innermost `innererror` message and
-- "(after N tries)" when retries were made. No secret ever appears in it.
-- @{is_error} tells one from other values.
-- @table error
-- @field kind `"service"` (the API answered with an error), `"auth"` (401/403, or no
--   token), `"network"` (DNS, connect, TLS, reset), `"timeout"` (ours, a 408, or the
--   service's 504) or `"protocol"` (a malformed or truncated response)
-- @field status the HTTP status, when there was a response
-- @field code the service's or identity platform's error code (`"BadArgumentError"`,
--   `"PartialError"`, `"invalid_client"`, ...)
-- @field message the human message
-- @field details as sent by the service, decoded
-- @field innererror as sent by the service, decoded (nested `innererror`s)
-- @field correlation_id from the error body
-- @field request_id from the `x-ms-request-id` header
-- @field retry_after seconds the service asked to wait (`Retry-After` as seconds or
--   an HTTP date, or `x-ms-retry-after-ms`)
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
  self.http:close()
end

local QUERY_OPTIONS = {
  timespan = true, workspace = true, workspaces = true, resource = true,
  server_timeout = true, statistics = true, render = true, on_row = true, on_progress = true,
}

-- The URL and auth scope for a query, from the options and the client.
local function target(self, opts)
  if opts.resource ~= nil then
    local resource = check.resource("resource", opts.resource)
    if opts.workspace ~= nil then misuse("give either 'workspace' or 'resource', not both") end
    return self.endpoint .. "/v1" .. resource .. "/query", self.query_scope
  end
  local ws = opts.workspace
  if ws ~= nil then check_workspace("workspace", ws) else ws = self.workspace end
  if ws == nil then
    misuse("no workspace: give 'workspace' to la.new or to query, or a 'resource'")
  end
  if type(ws) == "table" then
    return format("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.OperationalInsights/workspaces/%s/api/query?api-version=%s",
      self.arm_endpoint, escape(ws.subscription), escape(ws.resource_group), escape(ws.name),
      ARM_API_VERSION), self.arm_scope
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

-- What the response table from core says, as the API's result or error.
local function outcome(response)
  local status, headers = response.status, response.headers
  if response.transport then
    local t = response.transport
    return nil, errors.new { kind = t.kind, status = status, message = t.message, curl_code = t.code }
  end
  if response.parse_error then
    return nil, errors.new { kind = "protocol", status = status, message = response.parse_error,
                             request_id = headers["x-ms-request-id"] }
  end
  if not status or status < 200 or status > 299 then
    return nil, errors.from_http(status or 0, headers, response.body)
  end
  local result = response.result
  if not result then
    return nil, errors.new { kind = "protocol", status = status,
                             message = "the response has no query result" }
  end
  result.request_id = headers["x-ms-request-id"]
  if result.error ~= nil then
    result.error = errors.from_service("service", result.error, status, headers)
    result.status = "partial"
  else
    result.status = "success"
  end
  return result
end

-- Checks a query and its options; returns a function making the request
-- table (anew for each try: authorization adds to it) and the auth scope.
local function prepare(self, kql, opts, on_row)
  if getmetatable(self) ~= Client then
    error("loganalytics: use client:query(kql), not client.query(kql)", 3)
  end
  if type(kql) ~= "string" then
    misuse("the query must be a string, got " .. type(kql))
  end
  if kql:find("^%s*$") then misuse("the query must not be empty") end
  if kql:find("%z") then misuse("the query must not contain NUL bytes") end
  if opts == nil then opts = {} end
  check_type("opts", opts, "table")
  check_known(opts, QUERY_OPTIONS, "query")

  local url, scope = target(self, opts)
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
  local body = core.query_body(kql, span, workspaces)
  -- by default the whole request may last the service's wait plus a margin
  local timeout = self.timeout or ((opts.server_timeout or SERVICE_DEFAULT_WAIT) + TIMEOUT_MARGIN)
  local tls = self.tls
  local function request()
    return {
      url = url,
      headers = { "Content-Type: application/json", "Accept: application/json", prefer },
      body = body,
      user_agent = self.user_agent,
      connect_timeout = self.connect_timeout,
      timeout = timeout,
      stall_timeout = self.stall_timeout,
      ca_file = tls.ca_file, ca_path = tls.ca_path, proxy = tls.proxy, insecure = tls.insecure,
      allow_http = self.allow_http,
      threads = self.threads,
      on_row = on_row,
    }
  end
  return request, scope
end

-- A URL fit for a log line: no api_key parameter.
local function redact(url)
  return (url:gsub("([?&]api_key=)[^&]*", "%1REDACTED"))
end

local function describe(response)
  if response.transport then return response.transport.message end
  return "HTTP " .. tostring(response.status)
end

-- on_progress is called at least this often while a transfer is under way
local PROGRESS_INTERVAL_MS = 100

-- Waits `seconds` before a retry; with on_progress, in steps of
-- PROGRESS_INTERVAL_MS calling it between them, so a spinner keeps turning.
local function pause(seconds, on_progress)
  if not on_progress then return core.sleep(seconds) end
  local deadline = core.now() + seconds
  while true do
    local left = deadline - core.now()
    if left <= 0 then return end
    core.sleep(math.min(left, PROGRESS_INTERVAL_MS / 1000))
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
      local response = http:step(PROGRESS_INTERVAL_MS)
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

-- Sends, renewing a refused token once, and retrying what the policy says
-- (never after rows have reached on_row: they would arrive twice).
-- Returns the core's response table plus the number of tries, or nil, err.
local function send_with_retries(self, request, scope, rows_delivered, on_progress)
  local policy, log = self.policy, self.log
  local attempt, renewed = 0, false
  while true do
    attempt = attempt + 1
    local req = request()
    local authorized, err = self.authorize(req, scope)
    if not authorized then return nil, err end
    log("debug", "POST " .. redact(req.url))
    local started = core.now()
    local response = perform(self.http, req, on_progress)
    log("info", ("POST %s: %s in %.3f s"):format(redact(req.url), describe(response), core.now() - started))
    if response.status == 401 and not renewed and self.forget(scope) then
      renewed = true
      attempt = attempt - 1  -- the renewal is not a retry
    elseif attempt > policy.max_retries or not retry.retryable(response)
        or (rows_delivered and rows_delivered()) then
      return response, attempt
    else
      local wait = retry.delay(policy, attempt, response)
      log("warn", ("retry %d of %d in %.2f s after %s"):format(attempt, policy.max_retries, wait,
        describe(response)))
      pause(wait, on_progress)
    end
  end
end

-- outcome(), with the number of tries in the error when there were several.
local function final(response, attempts)
  local result, err = outcome(response)
  if err and attempts and attempts > 1 then
    err.attempts = attempts  -- tostring(err) says "after N tries"
  end
  return result, err
end

--- Runs a KQL query: `POST {endpoint}/v1/workspaces/{id}/query` (or
-- `/v1{resource}/query`, or Resource Manager's query path). Misuse raises;
-- failures return `nil, err`, after the retries the client's policy allows.
--
-- With `on_row`, the handler is called for each row as it is parsed, while
-- the body is still arriving, and no row is kept: `result.tables[i]` has
-- `name`, `columns` and `row_count` but empty `rows`. Returning `false`
-- from the handler stops the transfer at once (the result then has
-- `stopped = true`); an error raised in it aborts the transfer and is
-- re-raised from `query` with its original value.
-- @function client:query
-- @tparam string kql the query
-- @tparam[opt] table opts all optional:
-- @tparam string|number|table opts.timespan an ISO 8601 duration or interval
--   (`"PT1H"`, `"2024-01-01T00:00:00Z/PT1H"`), seconds back from now, or a table with
--   two of `start`, `finish`, `duration` (see @{loganalytics.timespan.format});
--   omitted: the query's own time filter
-- @tparam string opts.workspace overrides the client's workspace (a GUID or a name
--   of letters, digits, `_`, `.` and `-`, not `.` or `..`)
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
-- @tparam function opts.on_progress called with no arguments at least every 100 ms
--   while the transfer runs or a retry waits (a spinner, say); an error raised in
--   it cancels the query and is re-raised
-- @treturn[1] result
-- @treturn[2] nil
-- @treturn[2] error err
-- @usage local result, err = client:query("Heartbeat | summarize count() by Computer",
--   { timespan = "P1D" })
-- local n = 0
-- client:query("AzureActivity", { on_row = function(row) n = n + 1 end })
function Client:query(kql, opts)
  local delivered = false
  local on_row = type(opts) == "table" and opts.on_row or nil
  local counted
  if on_row ~= nil and is_callable(on_row) then
    counted = function(row, tbl)
      delivered = true
      return on_row(row, tbl)
    end
  end
  local request, scope = prepare(self, kql, opts, counted)
  local response, attempts = send_with_retries(self, request, scope, function() return delivered end,
                                               type(opts) == "table" and opts.on_progress or nil)
  if not response then return nil, attempts end
  return final(response, attempts)
end

-- Closes an iterator's transfer when a generic for is left early (Lua 5.4).
local closer_mt = { __close = function(closer) closer.cancel() end }

--- Iterates over the rows of a query as they arrive, keeping none:
-- `for row, tbl in client:rows(kql, opts) do body end`.
-- The transfer moves forward only as rows are taken (libcurl's multi
-- interface), so memory stays bounded by one chunk of rows. A failure
-- raises the @{error} object `query` would return (catch it with `pcall`);
-- a partial result's error is not raised. Leaving the loop early is fine:
-- on Lua 5.4 the loop's to-be-closed value cancels the transfer at once,
-- on older Lua the client's next query does.
-- @function client:rows
-- @tparam string kql the query
-- @tparam[opt] table opts @{client:query}'s options but `on_row`
-- @return a generic-for iterator giving `row, tbl`
-- @usage for row in client:rows("Heartbeat | take 100") do print(row.Computer) end
function Client:rows(kql, opts)
  local queue, head = {}, 1
  local function on_row(row, tbl)
    queue[#queue + 1] = row
    queue[#queue + 1] = tbl
  end
  if type(opts) == "table" and opts.on_row ~= nil then
    misuse("option 'on_row' is not for client:rows (it is the iterator)")
  end
  local delivered = false
  local request, scope = prepare(self, kql, opts, function(row, tbl)
    delivered = true
    on_row(row, tbl)
  end)
  local http, policy, log = self.http, self.policy, self.log
  local on_progress = type(opts) == "table" and opts.on_progress or nil
  local finished, renewed, attempt = false, false, 1
  local function start()
    local req = request()
    req.pull = true  -- a few rows per step: the transfer waits for the loop
    local authorized, err = self.authorize(req, scope)
    if not authorized then error(err, 0) end
    log("debug", "POST " .. redact(req.url))
    http:start(req)
  end
  start()
  -- the same policy as query, for as long as no row has been yielded
  local function again(response)
    if response.status == 401 and not renewed and self.forget(scope) then
      renewed = true
      return true
    end
    if delivered or attempt > policy.max_retries or not retry.retryable(response) then
      return false
    end
    local wait = retry.delay(policy, attempt, response)
    log("warn", ("retry %d of %d in %.2f s after %s"):format(attempt, policy.max_retries, wait,
      describe(response)))
    pause(wait, on_progress)
    attempt = attempt + 1
    return true
  end
  local function iterate()
    while true do
      if queue[head] ~= nil then
        local row, tbl = queue[head], queue[head + 1]
        queue[head], queue[head + 1] = nil, nil
        head = head + 2
        return row, tbl
      end
      if finished then return nil end
      queue, head = {}, 1
      local response = http:step(on_progress and PROGRESS_INTERVAL_MS or 1000)
      if not response and on_progress then on_progress() end
      if response then
        if again(response) then
          start()
        else
          finished = true
          local result, err = final(response, attempt)
          if not result then error(err, 0) end
        end
      end
    end
  end
  local closer = setmetatable({ cancel = function()
    if not finished then
      finished = true
      http:cancel()
    end
  end }, closer_mt)
  return iterate, nil, nil, closer
end

return la
