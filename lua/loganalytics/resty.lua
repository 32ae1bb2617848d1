--- Queries from OpenResty and nginx's Lua module, on cosockets.
--
-- `resty.new(options)` takes @{loganalytics.new}'s options and returns a
-- client whose `query`, `rows` and `on_row` behave as `la`'s (the same
-- client code: options, retries, time limits, errors, redaction), but
-- every byte goes through `ngx.socket.tcp`: the request handler's
-- coroutine waits for the network without blocking nginx's event loop, and
-- the work of turning a large body into rows is cut into slices of about
-- 2 ms with a yield between them, so other requests on the worker keep
-- being served however large the result. Token requests use cosockets too.
--
-- Works wherever cosockets work: `content_by_lua*`, `access_by_lua*`,
-- `rewrite_by_lua*`, `ngx.timer.at` callbacks and `ngx.thread`s; not in
-- `init_by_lua*`, `init_worker_by_lua*` (make the client there, query in a
-- timer), `set_by_lua*`, header or body filters, or `log_by_lua*`: a query
-- there raises an error saying so.
--
-- Make the client once (at module level, or in `init_worker_by_lua*`) and
-- use it from every request: connections are kept in nginx's keepalive
-- pool, tokens in the credential (or in a `lua_shared_dict`, see
-- `token_cache`), and many requests may query through it at once.
--
-- nginx.conf needs: `resolver` (to reach api.loganalytics.azure.com and the
-- identity platform by name), and for https `lua_ssl_trusted_certificate`
-- (e.g. `/etc/ssl/certs/ca-certificates.crt`) and `lua_ssl_verify_depth 5`:
-- certificates are verified unless `verify_tls = false`.
--
-- syntax: client = resty.new(options)
-- @module loganalytics.resty
-- @usage
-- -- content_by_lua_block:
-- local client = require("my_app").client  -- made once: resty.new{...}
-- local result, err = client:query("Heartbeat | take 10", { timespan = "PT1H" })
-- if not result then ngx.status = 502 ngx.say(tostring(err)) return end
-- for _, row in ipairs(result.tables[1].rows) do ngx.say(row.Computer) end

local la = require "loganalytics"
local core = require "loganalytics.core"
local check = require "loganalytics.check"
local shared_tokens = require "loganalytics.shared_tokens"

local type, pairs, tostring, tonumber, setmetatable, pcall, error =
  type, pairs, tostring, tonumber, setmetatable, pcall, error
local concat, min, floor = table.concat, math.min, math.floor
local wall_clock = core.wall_clock
local co_create, co_resume, co_status, co_yield =
  coroutine.create, coroutine.resume, coroutine.status, coroutine.yield

local M = { _VERSION = la._VERSION }

-- Work done on the event loop between two yields, at most (seconds).
local SLICE = 0.002
-- Rows made Lua values between two looks at the clock.
local BATCH = 200
-- Bytes read from the socket at a time: gzip data grows ~10x in the parser.
local READ_SIZE = 16384
-- Header bytes a response may have (status line and fields).
local MAX_HEADER_BYTES = 256 * 1024
-- Kept bodies (errors, token answers) are capped, as the C core caps them.
local MAX_KEPT_BODY = 1024 * 1024
local DEFAULT_KEEPALIVE_MS = 60000
local DEFAULT_POOL_SIZE = 32

local function sleep(seconds)
  -- ngx.sleep(0) does not let other requests run on nginx's Lua module
  -- 0.10.23: 1 ms does
  ngx.sleep(seconds > 0.001 and seconds or 0.001)
end

-- ---------------------------------------------------------------- yielding

-- Gives the event loop back once its current turn has run SLICE, whoever
-- ran it: ngx.now() is the time nginx cached when the loop last woke, so
-- many requests resuming in one turn (200 answers arriving together) share
-- one budget, and those past it go on in the next turns. Also once this
-- transfer has worked SLICE since it last waited (in case nginx's cached
-- time moved within the turn). `pace()` is cheap to call often; `rested()`
-- says a socket read just waited.
local function turn_spent()
  return wall_clock() - ngx.now() >= SLICE
end

-- Waits for a turn of the loop with budget left (again after each wake:
-- requests woken together by the timer go on in turns, a few at a time).
local function next_turn()
  repeat ngx.sleep(0.001) until not turn_spent()
end

-- Where nginx lets Lua use cosockets (and sleep).
local COSOCKET_PHASES = { rewrite = true, access = true, content = true, timer = true,
                          ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true }

local function unavailable(where)
  error("loganalytics.resty: cosockets are not available here (" .. where
    .. "): query from content, access or rewrite handlers, timers or ngx.thread", 0)
end

-- At the start of every query: says plainly where it cannot run; and many
-- requests arriving together start their queries in turns too.
local function pace_start()
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then unavailable(phase .. " phase") end
  if turn_spent() then next_turn() end
end

local function new_pacer()
  local last = core.now()
  local function pace()
    if core.now() - last >= SLICE or turn_spent() then
      next_turn()
      last = core.now()
    end
  end
  local function rested() last = core.now() end
  return pace, rested
end

-- Reads from the socket (`receiveany` when `any`); a read that waited let
-- the event loop run.
local function timed_read(sock, rested, pattern, any)
  local t0 = core.now()
  local data, err
  if any then data, err = sock:receiveany(pattern) else data, err = sock:receive(pattern) end
  if core.now() - t0 > 0.0002 then rested() end
  return data, err
end

-- --------------------------------------------------------------- a transfer

-- A failure of the transport, as the libcurl client describes them.
local function failed(kind, message)
  return { transport = { kind = kind, code = 0, message = message } }
end

-- The request line's target and the Host header, from a URL that passed
-- core.parse_url (so: http(s), no user information).
local function target_of(url, u)
  local rest = url:match("^%a[%w+.-]*://[^/?#]*(.*)$") or ""
  rest = rest:gsub("#.*$", "")
  if rest == "" then rest = "/" elseif rest:sub(1, 1) == "?" then rest = "/" .. rest end
  local default_port = u.scheme == "https" and 443 or 80
  local port = u.port or default_port
  local host_header = port == default_port and u.host or (u.host .. ":" .. port)
  return rest, host_header, port
end

-- The one rule for where a secret may go, the C core's (src/http.c's
-- guard, through core.request_refusal): nil, or why the request is refused.
local function refusal(req)
  return core.request_refusal(req.url, {
    headers = req.headers, username = req.username, allow_http = req.allow_http,
    carries_secret = req.carries_secret,
  })
end

local Http = {}
Http.__index = Http
Http.__name = "loganalytics.resty.http"

local function new_http(settings)
  return setmetatable({ settings = settings }, Http)
end

-- Reads one line (no CRLF); nil, err on failure.
local function read_line(sock, budget, rested)
  local line, err = timed_read(sock, rested, "*l")
  if not line then return nil, err end
  if #line > budget then return nil, "too long" end
  return line
end

-- The transfer itself: returns core's response table. `emit(row, tbl)` is
-- called for each row when req.on_row is set (rows are then not kept);
-- emit returning false stops the transfer.
local function run(self, req, pause_for_rows)
  local started = core.now()
  local deadline = req.timeout and started + req.timeout or nil
  local u, why = core.parse_url(req.url or "")
  if not u then return failed("protocol", "refused: " .. tostring(why)) end
  local refused = refusal(req)
  if refused then return failed("protocol", refused) end
  if req.proxy then
    return failed("protocol", "refused: loganalytics.resty does not use proxies")
  end
  local https = u.scheme == "https"
  local path, host_header, port = target_of(req.url, u)
  -- a plain-http secret goes to loopback only: "localhost" is not left to
  -- nginx's resolver (which asks DNS, not /etc/hosts)
  local host = u.host
  if host == "localhost" or host == "localhost." then host = "127.0.0.1" end
  if host:sub(1, 1) == "[" then host = host:sub(2, -2) end

  local function ms(seconds, fallback)
    local value = seconds or fallback
    if deadline then value = min(value, deadline - core.now()) end
    return floor(value * 1000 + 0.5) > 0 and floor(value * 1000 + 0.5) or 1
  end
  local pace, rested = new_pacer()
  pace()  -- many requests starting in one turn of the loop take turns
  local sock, err = ngx.socket.tcp()
  if not sock then return failed("network", "no cosocket: " .. tostring(err)) end
  self.sock = sock  -- for cancel
  local stall = req.stall_timeout or 60
  sock:settimeouts(ms(req.connect_timeout, 10), ms(stall, 60), ms(stall, 60))
  local pool = ("%s:%s:%d:%s"):format(u.scheme, host, port, req.insecure and "unverified" or "verified")
  local ok
  ok, err = sock:connect(host, port, { pool = pool, pool_size = self.settings.pool_size })
  if not ok then
    return failed(err == "timeout" and "timeout" or "network",
      ("cannot connect to %s port %d: %s"):format(u.host, port, tostring(err)))
  end
  local reused = sock:getreusedtimes() > 0
  if https and not reused then
    -- the name to verify (and for SNI): an address too, so that a
    -- certificate is never taken without a name check (nginx checks DNS
    -- names: an https endpoint is given by name)
    local server_name = host == "127.0.0.1" and u.host:lower():match("^localhost%.?$") and "localhost"
      or (u.host:gsub("^%[(.*)%]$", "%1"))
    local session
    session, err = sock:sslhandshake(nil, server_name, not req.insecure)
    if not session then
      sock:close()
      return failed(err == "timeout" and "timeout" or "network",
        ("TLS handshake with %s failed: %s"):format(u.host, tostring(err)))
    end
  end

  -- the request
  local body = req.body or ""
  local lines = {
    (req.method or "POST") .. " " .. path .. " HTTP/1.1",
    "Host: " .. host_header,
    "User-Agent: " .. (req.user_agent or "loganalytics-lua"),
    "Accept-Encoding: gzip",
    "Connection: keep-alive",
  }
  for _, line in ipairs(req.headers or {}) do lines[#lines + 1] = line end
  if req.username then
    lines[#lines + 1] = "Authorization: Basic " .. ngx.encode_base64(req.username .. ":" .. (req.password or ""))
  end
  if (req.method or "POST") ~= "GET" then lines[#lines + 1] = "Content-Length: " .. #body end
  lines[#lines + 1] = ""
  lines[#lines + 1] = body
  local sent
  sent, err = sock:send(concat(lines, "\r\n"))
  if not sent then
    sock:close()
    return failed(err == "timeout" and "timeout" or "network", "cannot send the request: " .. tostring(err))
  end

  local status  -- once the status line came
  -- A network failure from here: what it says, and whether it is ours. A
  -- connection closed in the middle of a response is the response's
  -- fault (libcurl's CURLE_PARTIAL_FILE: "protocol"); a reset is not.
  local function broken(what, e)
    sock:close()
    local response
    if e == "timeout" then
      if deadline and core.now() >= deadline - 0.001 then
        response = failed("timeout", ("the transfer timed out after %.1f s"):format(req.timeout))
      else
        response = failed("timeout", ("the response stalled: no data for %.1f s"):format(stall))
      end
    elseif e == "closed" and status then
      response = failed("protocol", what .. ": the connection closed before the response's end")
    else
      response = failed("network", what .. ": " .. tostring(e))
    end
    response.status = status
    return response
  end
  -- a response that is not well-formed HTTP
  local function malformed(message)
    sock:close()
    local response = failed("protocol", message)
    response.status = status
    return response
  end

  -- status line and header fields
  local headers, header_bytes
  repeat
    local line
    line, err = read_line(sock, MAX_HEADER_BYTES, rested)
    if not line then
      if err == "too long" then sock:close() return failed("protocol", "the response's headers are too large") end
      if err == "closed" and reused then
        -- the pooled connection was closed by the server meanwhile
        return failed("network", "the kept-alive connection was closed before an answer (" .. err .. ")")
      end
      return broken("no answer", err)
    end
    local code = line:match("^HTTP/1%.[01] (%d%d%d)")
    if not code then sock:close() return failed("protocol", "the response's status line is not HTTP") end
    status, headers, header_bytes = tonumber(code), {}, #line
    while true do
      line, err = read_line(sock, MAX_HEADER_BYTES, rested)
      if not line then
        if err == "too long" then return malformed("the response's headers are too large") end
        return broken("the headers broke off", err)
      end
      header_bytes = header_bytes + #line + 2
      if header_bytes > MAX_HEADER_BYTES then return malformed("the response's headers are too large") end
      if line == "" then break end
      local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
      if name then
        name = name:lower()
        headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
      end
    end
  until status >= 200 or status == 101

  local response = { status = status, headers = headers }
  local chunked = (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) ~= nil
  local length = not chunked and headers["content-length"] and tonumber(headers["content-length"]) or nil
  if headers["content-length"] and not chunked and not (length and length >= 0 and length == floor(length)) then
    return malformed("the response's Content-Length is not a number")
  end
  local gzip = (headers["content-encoding"] or ""):lower() == "gzip"
  local keep_alive = (headers["connection"] or ""):lower() ~= "close"
  local success = status >= 200 and status < 300 and not req.raw

  -- where the body goes: the decoder for a query result, else kept
  local decoder, kept, kept_len = nil, {}, 0
  local on_row = req.on_row
  local stopped = false
  if success then
    decoder = core.decoder { gzip = gzip, take = on_row and true or nil, batch = BATCH,
                             datetime = req.datetime, dynamic = req.dynamic, shape = req.shape }
  elseif gzip then
    decoder = nil  -- an error body in gzip: inflated whole below
  end
  local function take_rows()
    while true do
      local n, more, list = decoder:take()
      if list then
        for i = 1, #list, 2 do
          if on_row(list[i], list[i + 1]) == false then stopped = true break end
        end
      end
      if stopped then return end
      if pause_for_rows and n > 0 then co_yield() end
      pace()
      if not more then return end
    end
  end
  -- one piece of the body; false when the transfer must end now
  local function deliver(piece)
    if decoder then
      local fed, ferr = decoder:feed(piece)
      if not fed then
        response.parse_error = ferr.message
        response.out_of_memory = ferr.kind == "memory" or nil
        return false
      end
      take_rows()
      return not stopped
    end
    if kept_len + #piece > MAX_KEPT_BODY then
      piece = piece:sub(1, MAX_KEPT_BODY - kept_len)
    end
    kept[#kept + 1] = piece
    kept_len = kept_len + #piece
    return true
  end
  local function late()
    if deadline and core.now() > deadline then
      local timed_out = failed("timeout", ("the transfer timed out after %.1f s"):format(req.timeout))
      timed_out.status = status
      return timed_out
    end
  end

  local complete = false
  local problem
  if status == 204 or status == 304 or (req.method == "HEAD") then
    complete = true
  elseif chunked then
    while true do
      local line
      line, err = read_line(sock, 1024, rested)
      if not line then problem = err == "too long" and malformed("a chunk size line is too long")
                                 or broken("the body broke off", err) break end
      local size = tonumber((line:match("^%s*(%x+)%s*[;]?.-$")) or "", 16)
      if not size then problem = malformed("the response's chunked framing is broken") break end
      if size == 0 then
        -- trailer fields, then the end
        repeat
          line, err = read_line(sock, MAX_HEADER_BYTES, rested)
        until not line or line == ""
        if not line then problem = broken("the body broke off", err) break end
        complete = true
        break
      end
      while size > 0 do
        local data
        data, err = timed_read(sock, rested, min(size, READ_SIZE), true)
        if not data then problem = broken("the body broke off", err) break end
        size = size - #data
        if not deliver(data) then break end
        problem = late()
        if problem then sock:close() break end
      end
      if problem or stopped or response.parse_error then break end
      local crlf
      crlf, err = timed_read(sock, rested, 2)
      if crlf ~= "\r\n" then
        problem = crlf and malformed("the response's chunked framing is broken")
                  or broken("the body broke off", err)
        break
      end
    end
  elseif length then
    local left = length
    while left > 0 do
      local data
      data, err = timed_read(sock, rested, min(left, READ_SIZE), true)
      if not data then
        problem = err == "closed" and malformed(("the body ended %d bytes short of its Content-Length"):format(left))
                  or broken("the body broke off", err)
        break
      end
      left = left - #data
      if not deliver(data) then break end
      problem = late()
      if problem then sock:close() break end
    end
    complete = left == 0 and not problem
  else
    -- no length: the body ends with the connection
    keep_alive = false
    while true do
      local data
      data, err = timed_read(sock, rested, READ_SIZE, true)
      if not data then
        if err == "closed" then complete = true else problem = broken("the body broke off", err) end
        break
      end
      if not deliver(data) then break end
      problem = late()
      if problem then sock:close() break end
    end
  end
  if problem then
    if decoder then decoder:close() end
    return problem
  end
  self.sock = nil
  if complete and keep_alive and not stopped and not response.parse_error then
    sock:setkeepalive(self.settings.keepalive_timeout, self.settings.pool_size)
  else
    sock:close()
  end
  response.seconds = core.now() - started

  if decoder then
    if response.parse_error then decoder:close() return response end
    local result, ferr = decoder:finish()
    if result then
      if stopped then result.stopped = true end
      response.result = result
    elseif not stopped then
      response.parse_error = ferr.message
      response.out_of_memory = ferr.kind == "memory" or nil
    end
    decoder:close()
    return response
  end
  local text = concat(kept)
  if gzip and text ~= "" then
    -- an error body in gzip: small, inflated in one go
    text = core.gunzip(text) or text
  end
  response.body = text ~= "" and text or nil
  return response
end

--- One request, to its end. Same arguments and response table as the
-- libcurl client's `perform` (core.new), so the client code is shared.
function Http:perform(req)
  if self.transfer then error("loganalytics.resty: a transfer is under way on this handle", 2) end
  local ok, response = pcall(run, self, req, false)
  if not ok then
    if type(response) == "string" and response:find("API disabled in the context of", 1, true) then
      unavailable(response)
    end
    error(response, 0)
  end
  return response
end

--- The same request, moved on by `step` a few rows at a time (client:rows).
function Http:start(req)
  local co = co_create(function() return run(self, req, true) end)
  self.transfer = co
end

function Http:step()
  local co = self.transfer
  if not co then error("loganalytics.resty: no transfer under way", 2) end
  local ok, response = co_resume(co)
  if not ok then
    self.transfer = nil
    error(response, 0)
  end
  if co_status(co) == "dead" then
    self.transfer = nil
    return response
  end
  return nil
end

-- Drops a transfer under way (a rows() loop left early): its connection
-- is closed now, not kept alive (the rest of the body is still on it).
function Http:cancel()
  self.transfer = nil
  local sock = self.sock
  self.sock = nil
  if sock then sock:close() end
end

function Http:close()
  self:cancel()
end

-- ---------------------------------------------------------------- clients

local OWN_OPTIONS = { token_cache = true, pool_size = true, keepalive_timeout = true }

--- Makes a client doing its I/O on cosockets.
-- syntax: client = resty.new(options)
-- @tparam table options @{loganalytics.new}'s options (but `proxy`, `ca_file`,
--   `ca_path` and `threads`: nginx.conf's `lua_ssl_trusted_certificate` says which
--   CAs are trusted; no proxy is used), and:
-- @tparam string options.token_cache (optional) the name of a `lua_shared_dict`:
--   the credential's tokens are kept there, shared by every worker, with one token
--   request at a time per credential and scope (the others wait for it, without
--   blocking the loop)
-- @tparam number options.pool_size (optional) connections kept alive per host and
--   port, per worker (default 32)
-- @tparam number options.keepalive_timeout (optional) seconds an idle kept-alive
--   connection stays open (default 60)
-- @treturn client
function M.new(options)
  if type(options) ~= "table" then
    error("loganalytics.resty: new expects an options table, got " .. type(options), 2)
  end
  if not (ngx and ngx.socket and ngx.socket.tcp) then
    error("loganalytics.resty: needs nginx's Lua module (ngx.socket.tcp): outside nginx, use require 'loganalytics'", 2)
  end
  for _, name in ipairs { "proxy", "ca_file", "ca_path", "threads" } do
    if options[name] ~= nil then
      check.misuse(("option '%s' is not for loganalytics.resty: %s"):format(name,
        name == "proxy" and "it connects directly"
        or name == "threads" and "it decodes on the event loop, in slices"
        or "set lua_ssl_trusted_certificate in nginx.conf"))
    end
  end
  local base = {}
  for k, v in pairs(options) do if not OWN_OPTIONS[k] then base[k] = v end end
  local pool_size = options.pool_size or DEFAULT_POOL_SIZE
  if type(pool_size) ~= "number" or pool_size < 1 or pool_size ~= floor(pool_size) then
    check.misuse("option 'pool_size' must be a whole number >= 1")
  end
  local keepalive = options.keepalive_timeout
  if keepalive ~= nil and (type(keepalive) ~= "number" or not (keepalive > 0 and keepalive < math.huge)) then
    check.misuse("option 'keepalive_timeout' must be a number of seconds > 0")
  end
  local settings = {
    pool_size = pool_size,
    keepalive_timeout = keepalive and floor(keepalive * 1000) or DEFAULT_KEEPALIVE_MS,
  }
  if options.token_cache ~= nil then
    check.text("token_cache", options.token_cache)
    if base.credential == nil then check.misuse("option 'token_cache' needs 'credential'") end
    base.credential = shared_tokens.wrap(base.credential, options.token_cache, sleep)
  end
  return la._new_with_io(base, {
    new_http = function() return new_http(settings) end,
    sleep = sleep,
    pace = pace_start,
    per_call = true,
  })
end

return M
