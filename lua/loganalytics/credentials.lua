--- Azure AD (Entra ID) credentials: `la.credentials.*`.
-- Each constructor checks its options (misuse raises, naming the option)
-- and returns a @{credential} object whose `get_token([scope])` returns
-- `access_token, expires_on` or `nil, err`. Give one to a client as
-- `la.new{ credential = c }`: the client asks it for the scope each query
-- needs, and it caches its tokens (per scope, until shortly before expiry).
--
-- Every constructor takes the @{common_options} besides its own. Secrets
-- (client secret, key password, refresh token, code) are copied into C
-- memory and wiped when the credential is freed; none ever appears in an
-- error, a log line or `tostring`.
--
-- Each credential keeps one token cache, its own: the token requests and
-- their cache are in the C core (src/credential.c); the Azure CLI, token
-- functions and objects of the caller's own are cached in Lua
-- (loganalytics.token_cache, the same policy); the default chain answers
-- from the cache of the source it chose. A client asks its credential at
-- every query and keeps no token itself.
--
-- Token requests take their transport settings (`proxy`, `ca_file`,
-- `ca_path`, `verify_tls`, `connect_timeout`, `timeout`, `stall_timeout`,
-- `user_agent`) from the credential's own options first, then from the
-- client that asks (`la.new`'s options of the same names), then from the
-- defaults: connect 10 s, whole request 30 s, stall 60 s, the system's CAs,
-- libcurl's proxy variables. Managed identity (IMDS, App Service) is never
-- sent through a proxy.
-- @module loganalytics.credentials
-- @usage
-- local la = require "loganalytics"
-- local credential = la.credentials.client_secret{
--   tenant = "TENANT_ID", client_id = "CLIENT_ID", client_secret = os.getenv("SECRET"),
-- }
-- local client = la.new{ workspace = "WORKSPACE_ID", credential = credential }
-- -- or ask it directly:
-- local token, expires_on = credential:get_token()

local core = require "loganalytics.core"
local errors = require "loganalytics.errors"
local check = require "loganalytics.check"
local clouds = require "loganalytics.clouds"
local token_cache = require "loganalytics.token_cache"
local redaction = require "loganalytics.redact"

local type, pairs, ipairs, tostring, tonumber, setmetatable, getmetatable, pcall =
  type, pairs, ipairs, tostring, tonumber, setmetatable, getmetatable, pcall
local format, concat = string.format, table.concat
local getenv = os.getenv

local M = {}

local DEFAULT_SCOPE = clouds.public.audience .. "/.default"
local DEFAULT_IMDS = "http://169.254.169.254"
-- Azure stamps this asset tag on its VMs' chassis: seeing it is how default()
-- knows IMDS is worth asking, without sending a packet anywhere
local AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"

-- --------------------------------------------------------------- objects

local Credential = {}
Credential.__index = Credential
Credential.__name = "loganalytics.credential"

function Credential:__tostring()
  return format("loganalytics.credential (%s)", self.kind)
end

--- A credential: what every constructor returns. A client takes it as
-- `la.new{ credential = c }`; anything with a `get_token(self, scope)`
-- method returning `access_token, expires_on` will do there too.
-- `tostring(c)` names its kind, never a secret.
-- @type credential
-- @field kind the constructor's name: `"client_secret"`, `"managed_identity"`, `"default"`, ...
-- @field scope the scope `get_token` uses when given none

--- The access token for `scope`, from the credential's cache or a new token
-- request. A client calls it at every query, with its transport settings.
-- @function credential:get_token
-- @tparam[opt] string scope e.g. `"https://api.loganalytics.io/.default"`
--   (default: the credential's `scope`)
-- @tparam[opt] table transport the asking client's transport settings, for what the
--   credential's own options leave unset: `proxy`, `ca_file`, `ca_path`, `insecure`
--   (`verify_tls = false`), `connect_timeout`, `timeout`, `stall_timeout` (seconds),
--   `user_agent`; and `perform`, a function that sends token requests itself (e.g. on
--   nginx cosockets) instead of libcurl: see @{transport_perform}; with it, `sleep(seconds)`
--   (e.g. `ngx.sleep`; default: a blocking sleep) for waiting on a request of the same
--   credential that another coroutine has under way
-- @treturn[1] string access token
-- @treturn[1] number expires_on, epoch seconds
-- @treturn[1] number refresh_on, epoch seconds: when the cache will ask anew
-- @treturn[2] nil
-- @treturn[2] loganalytics.error err: kind `"auth"` with the identity platform's
--   `code` (e.g. `"invalid_client"`) and message, or `"network"`, `"timeout"`, `"protocol"`
function Credential:get_token(scope, transport)
  scope = scope or self.scope
  check.text("scope", scope)
  if transport ~= nil then check.type("transport", transport, "table") end
  return self:_fetch(scope, transport)
end

--- Token requests sent by the caller (sans-I/O): when `get_token`'s transport has a
-- `perform` function, the credentials whose token requests the C core makes
-- (`client_secret`, `client_certificate`, `workload_identity`, `authorization_code`,
-- `refresh_token`, `managed_identity`, and those `environment` and `default` choose) have
-- the core build the request and read the answer, with the same cache, errors, rotated
-- refresh tokens and redaction, and `perform(request)` send it. It returns the response
-- as a client's `perform` does: `{ status = 200, body = "..." }`, or
-- `{ transport = { kind = "network"|"timeout"|"protocol", message = "..." } }` when no
-- answer came (the old token is then kept until it expires). It may yield (a cosocket;
-- not on PUC Lua 5.1); what it raises is raised. One request per credential is under way
-- at a time: a coroutine asking the same credential meanwhile waits (with the transport's
-- `sleep`) for its answer, at most its `timeout`, then takes the cached token. `azure_cli` runs its command whatever the transport (a
-- blocking subprocess); tokens of the caller's own come from the caller.
-- The request must be sent as it says: over plain http only where `allow_http` is true or
-- the host is loopback when `carries_secret` is true, never through a proxy when `no_proxy`.
-- @table transport_perform
-- @field method `"POST"` (token endpoints) or `"GET"` (IMDS, App Service)
-- @field url the whole URL (IMDS and App Service: its query too)
-- @field headers a list of `"Name: value"` lines (App Service's carries its secret header)
-- @field body the form (a secret, an assertion, a code or a refresh token); nil for GET
-- @field user_agent the user agent to send, or nil (the transport's own)
-- @field connect_timeout seconds to connect (default 10)
-- @field timeout seconds for the whole request (default 30)
-- @field stall_timeout seconds without a byte once the answer has started (default 60)
-- @field ca_file CA bundle, or nil (the system's)
-- @field ca_path CA directory, or nil
-- @field proxy proxy URL, or nil
-- @field insecure true: TLS verification off (asked for with `verify_tls = false`)
-- @field no_proxy true: never through a proxy (managed identity)
-- @field carries_secret true: the request holds a secret
-- @field allow_http true: plain http to a host that is not loopback was allowed

--- Forgets the cached token for `scope`, so the next `get_token` asks
-- anew. A client calls it when the API answers 401 to a token.
-- @function credential:invalidate
-- @tparam[opt] string scope default: the credential's `scope`
function Credential:invalidate(scope)
  if self._core then self._core:invalidate(scope or self.scope) end
  if self._cache then self._cache:forget(scope or self.scope) end
end

-- What transport.perform answered: "answer", status, body | "failed", kind,
-- message (no answer came) | nil, why it is no response.
local function read_response(response)
  if type(response) ~= "table" then
    return nil, "transport.perform must return a response table, got " .. type(response)
  end
  local failure = response.transport
  if failure ~= nil then
    local kind = type(failure) == "table" and failure.kind
    if kind ~= "timeout" and kind ~= "protocol" then kind = "network" end
    local message = type(failure) == "table" and failure.message
    return "failed", kind, type(message) == "string" and message or "the transport gave no reason"
  end
  local status, body = response.status, response.body
  if type(status) ~= "number" or status % 1 ~= 0 or status < 100 or status > 999 then
    return nil, "transport.perform's response must have an HTTP status (or a transport failure), got "
      .. tostring(status)
  end
  if body ~= nil and type(body) ~= "string" then
    return nil, "transport.perform's response body must be a string, got " .. type(body)
  end
  return "answer", status, body or ""
end

-- pcall lets perform yield (a cosocket) on LuaJIT and Lua 5.2+, not on Lua 5.1
local PCALL_YIELDS = _VERSION ~= "Lua 5.1" or type(jit) == "table"

-- The core builds the token request and reads its answer; `perform` (the
-- caller's transport, e.g. nginx cosockets) sends it. No libcurl involved.
-- The core keeps one request under way per credential: while one coroutine
-- waits in perform, the others asking this credential wait (transport.sleep,
-- else core.sleep) for its answer, which the cache then gives them, rather
-- than replace its request; not beyond its time limit.
local function core_fetch_with(self, scope, transport, perform)
  local core_credential = self._core
  local sleep = transport.sleep or core.sleep
  if transport.sleep ~= nil then check.type("transport.sleep", transport.sleep, "function") end
  -- nil for the main thread: it cannot yield, so no other coroutine runs while it is
  -- in perform (unless perform resumes them: waiting would never end)
  local me, is_main = coroutine.running()
  if is_main then me = nil end
  while true do
    -- wait while another coroutine, alive (one whose perform raised is dead), has a
    -- request under way within its time limit
    local busy = self._in_flight
    if not (busy and busy.owner and busy.owner ~= me and os.time() <= busy.deadline
            and coroutine.status(busy.owner) ~= "dead") then
      break
    end
    sleep(0.01)
  end
  local token, expires_on, refresh_on = core_credential:token_request(scope, os.time(), transport)
  if token == false then
    local request = expires_on
    local busy = { owner = me, deadline = os.time() + request.timeout + 1 }
    self._in_flight = busy
    local ok, response
    if PCALL_YIELDS then
      ok, response = pcall(perform, request)
    else
      ok, response = true, perform(request)
    end
    if self._in_flight == busy then self._in_flight = nil end
    if not ok then
      core_credential:token_abandon()
      error(response, 0)
    end
    local what, x, y = read_response(response)
    if what == "answer" then
      token, expires_on, refresh_on = core_credential:token_answer(scope, os.time(), x, y)
    elseif what == "failed" then
      token, expires_on, refresh_on = core_credential:token_failed(scope, os.time(), x, y)
    else
      core_credential:token_abandon()
      check.misuse(x)
    end
  end
  return token, expires_on, refresh_on
end

local function core_fetch(self, scope, transport)
  local perform = transport and transport.perform
  local token, expires_on, refresh_on
  if perform ~= nil then
    check.type("transport.perform", perform, "function")
    token, expires_on, refresh_on = core_fetch_with(self, scope, transport, perform)
  else
    token, expires_on, refresh_on = self._core:get_token(scope, os.time(), transport)
  end
  if token then
    self._secrets:add(token, true)
    return token, expires_on, refresh_on
  end
  local e = expires_on
  e.message = self.kind .. ": " .. tostring(e.message)
  return nil, errors.new(e, self._secrets)
end

-- Every credential has its secret set (loganalytics.redact): what it was
-- given and the tokens it obtained are redacted from its errors.
local function new_credential(kind, scope, fetch, fields)
  local c = setmetatable(fields or {}, Credential)
  c.kind, c.scope, c._fetch = kind, scope, fetch
  c._secrets = c._secrets or redaction.new()
  return c
end

-- A credential whose tokens come from `fetch(scope, transport)` (returning
-- `token, expires_on[, refresh_on]` or `nil, err`), kept in a token_cache of
-- its own (over `store`, default a Lua table).
local function cached_credential(kind, scope, fetch, fields, store)
  local cache = token_cache.new(store)
  local c = new_credential(kind, scope, function(_, s, transport)
    return cache:get(s, function() return fetch(s, transport) end)
  end, fields)
  c._cache = cache
  return c
end

-- A credential that cannot give tokens, saying why (for environment() and
-- default() when nothing is configured).
local function unavailable(kind, why)
  return new_credential(kind, DEFAULT_SCOPE, function()
    return nil, errors.new { kind = "auth", message = kind .. ": " .. why }
  end, { unavailable = why })
end

-- --------------------------------------------------------------- options

-- the common options (documented as common_options, before client_secret)
local COMMON = {
  authority_host = true, scope = true, cloud = true, allow_http = true,
  connect_timeout = true, timeout = true, user_agent = true,
  stall_timeout = true, ca_file = true, ca_path = true, proxy = true, verify_tls = true,
}

local function check_options(options, what, required, optional)
  if type(options) ~= "table" then
    error(format("loganalytics: la.credentials.%s expects an options table, got %s", what, type(options)), 3)
  end
  local allowed = {}
  for k in pairs(COMMON) do allowed[k] = true end
  for _, k in ipairs(required) do allowed[k] = true end
  for _, k in ipairs(optional) do allowed[k] = true end
  check.known(options, allowed, "la.credentials." .. what)
  for _, k in ipairs(required) do check.text(k, options[k]) end
  -- it becomes a segment of the token URL's path
  if options.tenant ~= nil then check.tenant("tenant", options.tenant) end
  for _, k in ipairs(optional) do
    -- a PEM certificate is text over several lines
    if options[k] ~= nil and k ~= "certificate" then check.text(k, options[k]) end
  end
  check.seconds("connect_timeout", options.connect_timeout)
  check.seconds("timeout", options.timeout)
  check.seconds("stall_timeout", options.stall_timeout)
  for _, k in ipairs { "ca_file", "ca_path", "proxy" } do
    if options[k] ~= nil then check.text(k, options[k]) end
  end
  if options.verify_tls ~= nil then check.type("verify_tls", options.verify_tls, "boolean") end
  if options.allow_http ~= nil then check.type("allow_http", options.allow_http, "boolean") end
end

local function cloud_of(options)
  local name = options.cloud or "public"
  check.type("cloud", name, "string")
  local cloud = clouds[name]
  if not cloud then check.misuse("option 'cloud' must be 'public', 'usgov' or 'china', got '" .. name .. "'") end
  return cloud
end

-- The fields every core credential takes, from the common options.
local function core_fields(options)
  local cloud = cloud_of(options)
  local authority = options.authority_host or getenv("AZURE_AUTHORITY_HOST") or cloud.authority_host
  local scope = options.scope or (cloud.audience .. "/.default")
  if options.scope ~= nil then check.text("scope", options.scope) end
  return {
    authority_host = check.endpoint("authority_host", authority, options.allow_http),
    allow_http = options.allow_http,
    user_agent = options.user_agent,
    connect_timeout = options.connect_timeout,
    timeout = options.timeout,
    stall_timeout = options.stall_timeout,
    ca_file = options.ca_file, ca_path = options.ca_path, proxy = options.proxy,
    verify_tls = options.verify_tls,
  }, scope
end

-- the options that are secrets, by their name in the core's fields
local SECRET_FIELDS = { "client_secret", "password", "refresh_token", "code", "identity_header",
                        "certificate" }

local function make_core(kind, options, fields, scope)
  local ud = core.credential(kind, fields)
  local secrets = redaction.new()
  for _, name in ipairs(SECRET_FIELDS) do secrets:add(fields[name]) end
  return new_credential(kind, scope, core_fetch, { _core = ud, _secrets = secrets })
end

-- --------------------------------------------------------------- flows

--- Constructors (la.credentials.*): each returns a credential.
-- @section constructors

--- The options every constructor takes (and `la.authorize_url`).
-- @table common_options
-- @field authority_host the identity platform's base URL (default:
--   `AZURE_AUTHORITY_HOST`, else the cloud's, `https://login.microsoftonline.com`): an
--   http(s) URL without user information, query, fragment or `.`/`..` path segment
-- @field cloud `"public"` (default), `"usgov"` or `"china"`: the authority host and the
--   default scope together
-- @field scope the scope tokens are asked for when `get_token` is given none (default:
--   `https://api.loganalytics.io/.default`)
-- @field allow_http `true` to allow a plain `http://` authority host that is not loopback
--   (a token request carrying a secret is otherwise refused over plain http to any host,
--   or through any proxy, that is not loopback)
-- @field connect_timeout seconds to connect to the identity platform (default: the
--   client's `connect_timeout`, else 10)
-- @field timeout seconds for a whole token request (default: the client's `timeout`,
--   else 30)
-- @field stall_timeout seconds without a byte once the answer has started (default: the
--   client's `stall_timeout`, else 60)
-- @field ca_file CA bundle for the identity platform's TLS (default: the client's, else
--   the system's)
-- @field ca_path CA directory for the identity platform's TLS (default: the client's)
-- @field verify_tls `false` turns TLS verification of token requests off (default: the
--   client's `verify_tls`, else true)
-- @field proxy proxy URL for token requests (default: the client's `proxy`, else
--   libcurl's environment variables); managed identity never uses a proxy
-- @field user_agent a product token put before the module's own (default: the client's
--   user agent)

--- Client credentials with a secret: the v2.0 token endpoint with `scope`;
-- with `resource`, the v1 endpoint.
-- @tparam table options the @{common_options} and:
-- @tparam string options.tenant the directory (tenant) id or domain: a GUID or a domain
--   name (labels of letters, digits, `_` and `-` joined by dots); every constructor
--   refuses anything else, so a tenant never changes the token URL's path
-- @tparam string options.client_id the application (client) id
-- @tparam string options.client_secret the client secret
-- @tparam[opt] string options.resource a v1 resource (audience) instead of `scope`
-- @treturn credential
-- @usage local credential = la.credentials.client_secret{
--   tenant = "TENANT_ID", client_id = "CLIENT_ID", client_secret = "SECRET" }
function M.client_secret(options)
  check_options(options, "client_secret", { "tenant", "client_id", "client_secret" }, { "resource" })
  local fields, scope = core_fields(options)
  fields.tenant, fields.client_id, fields.client_secret = options.tenant, options.client_id, options.client_secret
  if options.resource then
    fields.use_v1 = true
    scope = options.resource .. "/.default"
  end
  return make_core("client_secret", options, fields, scope)
end

--- The authorization code flow: exchanges `code` once, then refreshes with
-- the refresh token it got (and keeps the newest one the service rotates in).
-- See @{authorize_url} for the URL that brings the code.
-- @tparam table options the @{common_options} and:
-- @tparam string options.tenant the directory (tenant) id, or `"common"`/`"organizations"`
-- @tparam string options.client_id the application (client) id
-- @tparam string options.code the authorization code the redirect brought
-- @tparam string options.redirect_uri the redirect URI the code was issued for
-- @tparam[opt] string options.client_secret for a confidential client
-- @tparam[opt] string options.resource a v1 resource instead of `scope`
-- @treturn credential
function M.authorization_code(options)
  check_options(options, "authorization_code", { "tenant", "client_id", "code", "redirect_uri" },
                { "client_secret", "resource" })
  local fields, scope = core_fields(options)
  for _, k in ipairs { "tenant", "client_id", "client_secret", "code", "redirect_uri" } do fields[k] = options[k] end
  if options.resource then fields.use_v1, scope = true, options.resource .. "/.default" end
  return make_core("authorization_code", options, fields, scope)
end

--- Tokens from a refresh token (rotated refresh tokens are kept).
-- @tparam table options the @{common_options} and:
-- @tparam string options.tenant the directory (tenant) id
-- @tparam string options.client_id the application (client) id
-- @tparam string options.refresh_token the refresh token
-- @tparam[opt] string options.client_secret for a confidential client
-- @tparam[opt] string options.resource a v1 resource instead of `scope`
-- @treturn credential
function M.refresh_token(options)
  check_options(options, "refresh_token", { "tenant", "client_id", "refresh_token" },
                { "client_secret", "resource" })
  local fields, scope = core_fields(options)
  for _, k in ipairs { "tenant", "client_id", "client_secret", "refresh_token" } do fields[k] = options[k] end
  if options.resource then fields.use_v1, scope = true, options.resource .. "/.default" end
  return make_core("refresh_token", options, fields, scope)
end

local function read_file(path, what)
  local f, why = io.open(path, "rb")
  if not f then check.misuse(format("option '%s': cannot read %s (%s)", what, path, tostring(why))) end
  local text = f:read("*a")
  f:close()
  return text
end

--- Client credentials with a certificate: a JWT client assertion signed
-- (RS256, with `x5t` and `x5t#S256` headers) with the certificate's key.
-- @tparam table options the @{common_options} and:
-- @tparam string options.tenant the directory (tenant) id
-- @tparam string options.client_id the application (client) id
-- @tparam string options.certificate PEM text, or the path of a PEM file, holding the
--   certificate and its private key (the key may be encrypted)
-- @tparam[opt] string options.password the private key's password
-- @tparam[opt] string options.resource a v1 resource instead of `scope`
-- @treturn credential
function M.client_certificate(options)
  check_options(options, "client_certificate", { "tenant", "client_id" },
                { "certificate", "password", "resource" })
  local pem = options.certificate
  check.type("certificate", pem, "string")
  if not pem:find("-----BEGIN", 1, true) then pem = read_file(pem, "certificate") end
  local fields, scope = core_fields(options)
  fields.tenant, fields.client_id, fields.certificate, fields.password =
    options.tenant, options.client_id, pem, options.password
  if options.resource then fields.use_v1, scope = true, options.resource .. "/.default" end
  return make_core("client_certificate", options, fields, scope)
end

--- Managed identity: App Service / Functions (`IDENTITY_ENDPOINT` and
-- `IDENTITY_HEADER`) when those are set, else the VM's IMDS, whose address
-- is `imds_endpoint` or `AZURE_POD_IDENTITY_AUTHORITY_HOST` or
-- `http://169.254.169.254`. At most one of `client_id`, `object_id` and
-- `resource_id` selects a user-assigned identity; none, the system-assigned one.
-- @tparam[opt] table options the @{common_options} and:
-- @tparam[opt] string options.client_id a user-assigned identity's client id
-- @tparam[opt] string options.object_id a user-assigned identity's object (principal) id
-- @tparam[opt] string options.resource_id a user-assigned identity's Azure resource id
-- @tparam[opt] string options.imds_endpoint the IMDS base URL
-- @tparam[opt] string options.identity_endpoint App Service's identity endpoint
--   (default `IDENTITY_ENDPOINT`)
-- @tparam[opt] string options.identity_header App Service's identity header value
--   (default `IDENTITY_HEADER`)
-- @treturn credential
function M.managed_identity(options)
  options = options or {}
  check_options(options, "managed_identity", {},
                { "client_id", "object_id", "resource_id", "imds_endpoint",
                  "identity_endpoint", "identity_header" })
  local selectors = 0
  for _, k in ipairs { "client_id", "object_id", "resource_id" } do
    if options[k] ~= nil then
      check.text(k, options[k])
      selectors = selectors + 1
    end
  end
  if selectors > 1 then check.misuse("give at most one of 'client_id', 'object_id' and 'resource_id'") end
  local fields, scope = core_fields(options)
  fields.authority_host = nil
  fields.mi_client_id, fields.mi_object_id, fields.mi_resource_id =
    options.client_id, options.object_id, options.resource_id
  local imds = options.imds_endpoint or getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST") or DEFAULT_IMDS
  -- IMDS is plain http by design, on a link-local address
  fields.imds_endpoint = check.endpoint("imds_endpoint", imds,
    options.allow_http or imds == DEFAULT_IMDS)
  local endpoint = options.identity_endpoint or getenv("IDENTITY_ENDPOINT")
  local header = options.identity_header or getenv("IDENTITY_HEADER")
  if endpoint and header then
    fields.identity_endpoint = check.endpoint("identity_endpoint", endpoint, true)
    fields.identity_header = header
  end
  return make_core("managed_identity", options, fields, scope)
end

--- Workload identity (AKS): the federated token in `token_file` is the
-- client assertion; the file is read at each token request, since it rotates.
-- @tparam[opt] table options the @{common_options} and:
-- @tparam[opt] string options.tenant default `AZURE_TENANT_ID`
-- @tparam[opt] string options.client_id default `AZURE_CLIENT_ID`
-- @tparam[opt] string options.token_file default `AZURE_FEDERATED_TOKEN_FILE`
-- @treturn credential
function M.workload_identity(options)
  options = options or {}
  local o = {}
  for k, v in pairs(options) do o[k] = v end
  o.tenant = o.tenant or getenv("AZURE_TENANT_ID")
  o.client_id = o.client_id or getenv("AZURE_CLIENT_ID")
  o.token_file = o.token_file or getenv("AZURE_FEDERATED_TOKEN_FILE")
  check_options(o, "workload_identity", { "tenant", "client_id", "token_file" }, {})
  local fields, scope = core_fields(o)
  fields.tenant, fields.client_id, fields.token_file = o.tenant, o.client_id, o.token_file
  return make_core("workload_identity", o, fields, scope)
end

--- What the Azure SDKs' EnvironmentCredential reads: `AZURE_TENANT_ID`,
-- `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` (a @{client_secret}), or
-- `AZURE_CLIENT_CERTIFICATE_PATH` and `AZURE_CLIENT_CERTIFICATE_PASSWORD`
-- (a @{client_certificate}); `AZURE_AUTHORITY_HOST`. When they are not
-- set, the credential's `get_token` returns `nil, err` saying so.
-- @tparam[opt] table options the @{common_options}
-- @treturn credential
function M.environment(options)
  options = options or {}
  local tenant, client = getenv("AZURE_TENANT_ID"), getenv("AZURE_CLIENT_ID")
  local secret, cert = getenv("AZURE_CLIENT_SECRET"), getenv("AZURE_CLIENT_CERTIFICATE_PATH")
  local o = {}
  for k, v in pairs(options) do o[k] = v end
  o.tenant, o.client_id = tenant, client
  if tenant and client and secret then
    o.client_secret = secret
    return M.client_secret(o)
  elseif tenant and client and cert then
    o.certificate, o.password = cert, getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD")
    return M.client_certificate(o)
  end
  return unavailable("environment",
    "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) are not all set")
end

-- --------------------------------------------------------------- Azure CLI

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- "2024-01-01 12:00:00.000000" in local time (older CLIs) to epoch seconds.
local function local_time(text)
  local y, mo, d, h, mi, s = tostring(text):match("^(%d+)-(%d+)-(%d+)[ T](%d+):(%d+):(%d+)")
  if not y then return nil end
  return os.time { year = tonumber(y), month = tonumber(mo), day = tonumber(d),
                   hour = tonumber(h), min = tonumber(mi), sec = tonumber(s) }
end

-- Runs the CLI with its stdout (the answer) read apart from its stderr (its
-- messages: warnings too, which would break the JSON), which goes to a
-- private temporary file (os.tmpname makes it with mkstemp, mode 0600) removed
-- at once. Returns stdout, the first stderr line saying ERROR (else the first
-- non-blank one, or nil), and
-- whether it exited with success (always true on Lua 5.1/LuaJIT, which
-- cannot tell: the answer is then judged by itself).
local function run_cli(cmd)
  local made, errfile = pcall(os.tmpname)
  if not made then return "", "cannot make a temporary file: " .. tostring(errfile), false end
  local pipe = io.popen(cmd .. " 2>" .. shell_quote(errfile))
  local output, exited_ok = "", false
  if pipe then
    output = pipe:read("*a") or ""
    exited_ok = pipe:close() == true
  end
  local first
  local f = io.open(errfile, "rb")
  if f then
    for line in f:lines() do
      line = line:match("^%s*(.-)%s*$")
      -- the CLI's error rather than the warnings before it
      if line:find("^ERROR") then first = line break end
      if line ~= "" then first = first or line end
    end
    f:close()
  end
  os.remove(errfile)
  return output, first and first:sub(1, 300), exited_ok
end

--- The Azure CLI's signed-in account: runs
-- `az account get-access-token --output json --resource R` (R: the scope
-- without `/.default`) and caches the token like every credential (until
-- five minutes before expiry, or half its lifetime).
-- Its stdout is read apart from its stderr, so warnings do not disturb the
-- answer; an error quotes one line of stderr (the first saying `ERROR`,
-- else the first), never stdout (which may hold a token).
-- @tparam[opt] table options the @{common_options} and:
-- @tparam[opt] string options.command the CLI to run (default `"az"`)
-- @tparam[opt] string options.tenant passed as `--tenant`
-- @treturn credential
function M.azure_cli(options)
  options = options or {}
  check_options(options, "azure_cli", {}, { "command", "tenant" })
  local command = options.command or "az"
  local c
  local function fetch(scope)
    local resource = scope:gsub("/%.default$", "")
    local cmd = format("%s account get-access-token --output json --resource %s", command, shell_quote(resource))
    if options.tenant then cmd = cmd .. " --tenant " .. shell_quote(options.tenant) end
    local output, why, exited_ok = run_cli(cmd)
    local doc = exited_ok and core.decode_json(output)
    if type(doc) ~= "table" or type(doc.accessToken) ~= "string" or doc.accessToken == "" then
      -- the CLI's own words from stderr; stdout never (it may hold a token)
      if not why then
        why = exited_ok and "'" .. command .. "' gave no access token"
          or "'" .. command .. "' failed and said nothing"
      end
      return nil, errors.new({ kind = "auth", message = "azure_cli: " .. why }, c._secrets)
    end
    c._secrets:add(doc.accessToken, true)
    local expires_on = tonumber(doc.expires_on) or local_time(doc.expiresOn) or (os.time() + 300)
    return doc.accessToken, expires_on
  end
  c = cached_credential("azure_cli", cloud_of(options).audience .. "/.default", fetch)
  return c
end

-- --------------------------------------------------------------- default

local function file_text(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("*l")
  f:close()
  return text
end

local function on_azure_vm()
  return file_text("/sys/class/dmi/id/chassis_asset_tag") == AZURE_ASSET_TAG
end

local function command_exists(name)
  if name:find("/", 1, true) then return io.open(name, "r") ~= nil end
  local ok = os.execute("command -v " .. shell_quote(name) .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

--- The Azure SDKs' default chain: @{environment}, @{workload_identity},
-- @{managed_identity}, @{azure_cli}. The first that gives a token is kept;
-- when all fail, the error lists what each said. Managed identity is tried
-- only where it can answer: with App Service's variables, an IMDS address
-- set by option or `AZURE_POD_IDENTITY_AUTHORITY_HOST`, or on an Azure VM
-- (seen in its DMI asset tag); never by probing the network.
-- @tparam[opt] table options the @{common_options} and:
-- @tparam[opt] string options.imds_endpoint the IMDS base URL for the managed identity step
-- @tparam[opt] string options.az_command the Azure CLI to run (default `"az"`)
-- @treturn credential
function M.default(options)
  options = options or {}
  check_options(options, "default", {}, { "imds_endpoint", "az_command" })
  local function pass(extra)
    local o = {}
    for k in pairs(COMMON) do o[k] = options[k] end
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end
  local steps = {}
  local function add(kind, build)
    local ok, credential = pcall(build)
    if not ok then credential = unavailable(kind, tostring(credential):gsub("^loganalytics: ", "")) end
    steps[#steps + 1] = credential
  end
  add("environment", function() return M.environment(pass()) end)
  add("workload_identity", function()
    if not getenv("AZURE_FEDERATED_TOKEN_FILE") then
      return unavailable("workload_identity", "AZURE_FEDERATED_TOKEN_FILE is not set")
    end
    return M.workload_identity(pass())
  end)
  add("managed_identity", function()
    local imds = options.imds_endpoint or getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST")
    local app_service = getenv("IDENTITY_ENDPOINT") and getenv("IDENTITY_HEADER")
    if not (imds or app_service or on_azure_vm()) then
      return unavailable("managed_identity",
        "not on Azure (no IDENTITY_ENDPOINT, no AZURE_POD_IDENTITY_AUTHORITY_HOST, not an Azure VM)")
    end
    return M.managed_identity(pass { imds_endpoint = imds, client_id = getenv("AZURE_CLIENT_ID") })
  end)
  add("azure_cli", function()
    local command = options.az_command or "az"
    if not command_exists(command) then
      return unavailable("azure_cli", "'" .. command .. "' is not installed")
    end
    return M.azure_cli(pass { command = command })
  end)

  local chosen
  local scope0 = cloud_of(options).audience .. "/.default"
  -- no cache of its own: each step keeps its tokens
  local c = new_credential("default", options.scope or scope0, function(_, scope, transport)
    if chosen then return chosen:get_token(scope, transport) end
    local tried = {}
    for _, step in ipairs(steps) do
      if step.unavailable then
        tried[#tried + 1] = step.kind .. ": " .. step.unavailable
      else
        local token, expires_on, refresh_on = step:get_token(scope, transport)
        if token then
          chosen = step
          return token, expires_on, refresh_on
        end
        tried[#tried + 1] = tostring(expires_on.message)
      end
    end
    return nil, errors.new { kind = "auth",
      message = "default: no credential gave a token; tried " .. concat(tried, "; ") }
  end)
  function c.invalidate(_, scope) if chosen then chosen:invalidate(scope) end end
  c.steps = steps
  return c
end

-- --------------------------------------------------------------- the caller's own

-- (internal, for la.new) A credential of this module as it is; a token
-- function `token(scope)` (is_function) or an object of the caller's own with
-- `get_token(self, scope, transport)` made into one, with the token cache of
-- every Lua-side credential (`invalidate` is passed on to such an object).
function M._wrap(source, is_function)
  if getmetatable(source) == Credential then return source end
  local call, kind
  if is_function then
    call, kind = function(scope) return pcall(source, scope) end, "token_function"
  else
    call, kind = function(scope, transport)
      return pcall(function() return source:get_token(scope, transport) end)
    end, "custom"
  end
  local c = cached_credential(kind, DEFAULT_SCOPE, function(scope, transport)
    local ok, got, expires_on = call(scope, transport)
    if ok and got == nil and errors.is_error(expires_on) then
      return nil, expires_on  -- a credential's own error says it best
    end
    if not ok or type(got) ~= "string" or got == "" or got:find("[%z\r\n]") then
      local why = not ok and tostring(got)
        or (got == nil and expires_on ~= nil and tostring(expires_on))
        or "the token provider returned no usable token"
      return nil, errors.new { kind = "auth", message = "no token: " .. why }
    end
    -- without an expiry the provider is asked again next time
    return got, type(expires_on) == "number" and expires_on or nil
  end)
  if kind == "custom" then
    function c.invalidate(self, scope)
      scope = scope or self.scope
      self._cache:forget(scope)
      pcall(function()
        if source.invalidate then source:invalidate(scope) end
      end)
    end
  end
  return c
end

-- (internal, for loganalytics.nginx) A credential over `inner`, a credential
-- of this module, whose cache is kept in `store` (a shared dict); `fetch`
-- (scope, transport) asks `inner` and may make others sharing the store wait
-- for one request. invalidate forgets both.
function M._shared(inner, store, fetch)
  local c = cached_credential(inner.kind, inner.scope, fetch, nil, store)
  function c.invalidate(self, scope)
    scope = scope or self.scope
    self._cache:forget(scope)
    inner:invalidate(scope)
  end
  return c
end

-- --------------------------------------------------------------- authorize URL

--- The authorize URL of the code and implicit flows, for a browser
-- (also `la.authorize_url`): v2.0, or v1 with `resource`. The code flow
-- asks for `offline_access` too, so the code brings a refresh token.
-- @tparam table options the @{common_options} (`authority_host`, `cloud`, `scope`) and:
-- @tparam string options.tenant the directory (tenant) id
-- @tparam string options.client_id the application (client) id
-- @tparam string options.redirect_uri where the browser is sent back
-- @tparam[opt] string options.response_type `"code"` (default) or `"token"`
-- @tparam[opt] string options.state echoed back to the redirect URI
-- @tparam[opt] string options.resource a v1 resource instead of `scope`
-- @tparam[opt] string options.prompt e.g. `"login"`, `"consent"`
-- @tparam[opt] string options.login_hint
-- @tparam[opt] string options.response_mode default `"query"` (`"fragment"` for tokens)
-- @tparam[opt] string options.nonce
-- @treturn string the URL
function M.authorize_url(options)
  check_options(options, "authorize_url", { "tenant", "client_id", "redirect_uri" },
                { "response_type", "state", "resource", "prompt", "login_hint", "response_mode", "nonce" })
  local response_type = options.response_type or "code"
  if response_type ~= "code" and response_type ~= "token" then
    check.misuse("option 'response_type' must be 'code' or 'token', got '" .. tostring(response_type) .. "'")
  end
  local fields, scope = core_fields(options)
  local params = {
    { "client_id", options.client_id },
    { "response_type", response_type },
    { "redirect_uri", options.redirect_uri },
  }
  local path
  if options.resource then
    path = "/oauth2/authorize"
    params[#params + 1] = { "resource", options.resource }
  else
    path = "/oauth2/v2.0/authorize"
    if response_type == "code" then scope = scope .. " offline_access" end
    params[#params + 1] = { "scope", scope }
  end
  params[#params + 1] = { "response_mode", options.response_mode or (response_type == "token" and "fragment" or "query") }
  for _, k in ipairs { "state", "prompt", "login_hint", "nonce" } do
    if options[k] then params[#params + 1] = { k, options[k] } end
  end
  local query = {}
  for i, p in ipairs(params) do query[i] = p[1] .. "=" .. check.escape(p[2]) end
  return fields.authority_host .. "/" .. check.escape(options.tenant) .. path .. "?" .. concat(query, "&")
end

return M
