--- Queries from nginx/OpenResty without blocking the worker's event loop.
--
-- `client:query` blocks while libcurl works: in a request handler that
-- freezes every other request of the worker. Here the query runs in one of
-- nginx's worker threads (`ngx.run_worker_thread`), each with a Lua VM of
-- its own; the handler's coroutine waits without blocking the loop. Only
-- plain values cross between the two, so client options are a plain table
-- (a credential is given by its constructor's name and options), `on_row`
-- is not available, and the result comes back copied.
--
-- Needed in nginx.conf: `thread_pool loganalytics threads=N;` in the main
-- context (or another pool, named by the `pool` option), and
-- `lua_package_path` / `lua_package_cpath` reaching the Lua files and the
-- module built for LuaJIT (`make build-jit`). examples/openresty/ has a
-- complete configuration.
-- @module loganalytics.nginx
-- @usage
-- -- nginx.conf, main context:  thread_pool loganalytics threads=4;
-- local lan = require "loganalytics.nginx"
-- local result, err = lan.query({ workspace = W, api_key = K }, "Heartbeat | take 10")
-- if not result then ngx.status = 502 ngx.say(tostring(err)) return end
-- for _, row in ipairs(result.tables[1].rows) do ngx.say(row.Computer) end

local M = {}

local DEFAULT_POOL = "loganalytics"

-- --------------------------------------------------------------- thread side

-- One client per distinct options per thread VM: VMs are reused across
-- requests, so connections and tokens are too.
local clients = {}

local function options_key(options)
  local keys = {}
  for k in pairs(options) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = options[k]
    if type(v) == "table" then v = options_key(v) end
    parts[#parts + 1] = k .. "=" .. tostring(v)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Waiting for another's token request blocks only the pool's thread.
local function core_sleep(seconds) require("loganalytics.core").sleep(seconds) end

local function client_for(options)
  local key = options_key(options)
  local client = clients[key]
  if client then return client end
  local la = require "loganalytics"
  local o = {}
  for k, v in pairs(options) do o[k] = v end
  local spec, dict = o.credential, o.token_cache
  o.token_cache = nil
  if type(spec) == "table" then
    local make = la.credentials[spec.type]
    if type(make) ~= "function" then
      error("loganalytics.nginx: unknown credential type '" .. tostring(spec.type) .. "'", 0)
    end
    local args = {}
    for k, v in pairs(spec) do if k ~= "type" then args[k] = v end end
    local credential = make(args)
    o.credential = dict and require("loganalytics.shared_tokens").wrap(credential, dict, core_sleep)
      or credential
  end
  client = la.new(o)
  clients[key] = client
  return client
end

-- Plain copies: what crosses back from the thread loses metatables.
local function plain_error(err)
  local copy = {}
  for k, v in pairs(err) do copy[k] = v end
  return copy
end

--- Runs in the worker thread: `ngx.run_worker_thread` calls it for
-- @{query}. Not for direct use; it must be a field of the module for
-- nginx to find it.
-- @tparam table options the client options given to @{query}
-- @tparam string kql the query
-- @tparam[opt] table opts the query options
-- @treturn boolean false when the query raised (misuse), with the message
-- @return the result, or nil and a plain copy of the error
function M.run(options, kql, opts)
  local ok, result, err = pcall(function()
    return client_for(options):query(kql, opts)
  end)
  if not ok then return false, tostring(result) end  -- misuse: re-raised by query()
  if not result then return true, nil, plain_error(err) end
  if result.error then result.error = plain_error(result.error) end
  -- shape = "columns": a column (userdata) cannot cross: its values do, as an
  -- array (once: columns[j].values is set again on the handler's side)
  for _, tbl in ipairs(result.tables) do
    for j, col in ipairs(tbl.values or {}) do
      tbl.values[j] = col:totable()
      tbl.columns[j].values = nil
    end
  end
  return true, result
end

-- --------------------------------------------------------------- handler side

-- The secrets in the options, for redacting what comes back from the thread
-- (its client redacted already, and knows the tokens it obtained; this also
-- covers what the thread raised).
local CREDENTIAL_SECRETS = { "client_secret", "password", "refresh_token", "code", "identity_header" }

local function secrets_of(options)
  local secrets = require("loganalytics.redact").new()
  secrets:add_basic(options.api_key, "")
  if type(options.token) == "string" then secrets:add(options.token) end
  if type(options.credential) == "table" then
    for _, name in ipairs(CREDENTIAL_SECRETS) do secrets:add(options.credential[name]) end
  end
  return secrets
end

--- Runs a query in nginx's thread pool; same results and errors as
-- `client:query` (misuse raises, failures of the world return `nil, err`).
-- Threads and their clients are reused across requests, so connections
-- and tokens are too. A pool with no free Lua VM fails at once (`nil, err`
-- with kind `"network"`).
-- @tparam table options `la.new`'s options, as plain values (no functions), and:
-- @tparam table options.credential (optional) a credential by its constructor's
--   name and options: `{ type = "client_secret", tenant = T, client_id = C, client_secret = S }`
--   (any `la.credentials` constructor)
-- @tparam string options.token_cache (optional) the name of a `lua_shared_dict`: tokens are
--   shared through it by every thread and worker (else each thread VM keeps its own), one
--   token request for all of them even when many queries start at once
-- @tparam string options.pool (optional) the `thread_pool` to run in (default `"loganalytics"`)
-- @tparam string kql the query
-- @tparam[opt] table opts `client:query`'s options but `on_row` (plain values); with
--   `shape = "columns"` each column arrives as a plain array (`col:totable()`, made in the
--   thread: a column object cannot cross)
-- @treturn[1] table result, as from `client:query`, its rows readable by name
-- @treturn[2] nil
-- @treturn[2] table err, an error object as from `client:query`
-- @usage local result, err = require("loganalytics.nginx").query({
--   workspace = ngx.var.la_workspace, api_key = ngx.var.la_api_key,
-- }, ngx.var.arg_kql, { timespan = "P1D" })
function M.query(options, kql, opts)
  if type(options) ~= "table" then
    error("loganalytics.nginx: query expects a table of client options", 2)
  end
  if type(opts) == "table" and opts.on_row ~= nil then
    error("loganalytics.nginx: 'on_row' cannot cross into nginx's worker threads", 2)
  end
  local o, pool = {}, options.pool or DEFAULT_POOL
  for k, v in pairs(options) do if k ~= "pool" then o[k] = v end end
  local errors = require "loganalytics.errors"
  local ran, ok, result, err = ngx.run_worker_thread(pool, "loganalytics.nginx", "run", o, kql, opts)
  local secrets = secrets_of(o)
  if not ran then
    -- the pool is missing or has no free VM: a failure of the world
    return nil, errors.new({ kind = "network", message = "nginx worker thread: " .. tostring(ok) }, secrets)
  end
  if not ok then error(secrets:text(result), 2) end
  if not result then return nil, errors.new(err, secrets) end
  if result.error then result.error = errors.new(result.error, secrets) end
  -- rows read by name again: one shared metatable per table, as in the core
  for _, tbl in ipairs(result.tables) do
    local index = {}
    for j, col in ipairs(tbl.columns) do index[col.name] = j end
    local mt = { __index = function(row, name)
      local j = index[name]
      if j then return rawget(row, j) end
    end }
    for _, row in ipairs(tbl.rows or {}) do setmetatable(row, mt) end
    for j, col in ipairs(tbl.values and tbl.columns or {}) do col.values = tbl.values[j] end
  end
  return result
end

return M
