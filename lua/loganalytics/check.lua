--- Option checking shared by the client and the credentials: misuse
-- raises one clear line naming the option.
-- @module loganalytics.check

local core = require "loganalytics.core"

local type, pairs, ipairs, tostring, getmetatable, error =
  type, pairs, ipairs, tostring, getmetatable, error
local format, concat = string.format, table.concat

local M = {}

function M.misuse(message)
  error("loganalytics: " .. message, 0)
end

function M.type(name, value, expected)
  if type(value) ~= expected then
    M.misuse(format("option '%s' must be a %s, got %s", name, expected, type(value)))
  end
end

function M.text(name, value)
  M.type(name, value, "string")
  if value == "" then M.misuse(format("option '%s' must not be empty", name)) end
  -- would break a header line or the URL: never legitimate here
  if value:find("[%z\r\n]") then
    M.misuse(format("option '%s' must not contain NUL or line breaks", name))
  end
end

function M.known(options, allowed, what)
  for key in pairs(options) do
    if not allowed[key] then
      M.misuse(format("unknown %s option '%s'", what, tostring(key)))
    end
  end
end

function M.is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

-- URLs are read by libcurl's own parser (core.parse_url, src/url.c), so
-- the host decided on is the host libcurl connects to. Messages never quote
-- the URL: it may hold a password.
local function parse(name, url)
  M.text(name, url)
  local u, why = core.parse_url(url)
  if not u then M.misuse(format("option '%s' is not a usable URL: %s", name, why)) end
  return u
end

-- An http(s) base URL (endpoint, arm_endpoint, authority_host, ...):
-- no user information, query, fragment, zone id or dot segment; plain http
-- only to loopback (127.0.0.0/8, ::1, localhost) unless allow_http: the C
-- core's rule (la_url_base_problem), which it also applies by itself.
-- Returns the normalized base URL (scheme and host in lower case, no
-- trailing slash).
function M.endpoint(name, url, allow_http)
  M.text(name, url)
  local base, why = core.base_url(url, allow_http)
  if not base then M.misuse(format("option '%s' %s", name, why)) end
  return base
end

local PROXY_SCHEMES = { http = true, https = true, socks4 = true, socks4a = true, socks5 = true,
                        socks5h = true }

-- The proxy option: a proxy URL libcurl takes (no scheme means http).
-- A plain-http request with a secret crosses the network in clear text to
-- its proxy (or is decrypted there): each of `urls` that is plain http
-- (checked already: loopback, or allow_http) may use a loopback proxy
-- only, unless allow_http. https requests are tunnelled (CONNECT) and keep
-- their secret inside TLS: any proxy will do.
function M.proxy(name, proxy, urls, allow_http)
  local u = parse(name, proxy:find("://", 1, true) and proxy or "http://" .. proxy)
  if not PROXY_SCHEMES[u.scheme] then
    M.misuse(format("option '%s' must be an http, https or socks proxy, got scheme '%s'", name, u.scheme))
  end
  if allow_http or u.loopback then return end
  for _, url in ipairs(urls) do
    if url:find("^http://") then
      M.misuse(format("option '%s' is a proxy that is not loopback for plain-http requests carrying "
        .. "a secret; use https or allow_http = true", name))
    end
  end
end

-- ASCII only: %w would follow the process's locale
local UNRESERVED = "A-Za-z0-9%-%._~"

-- A workspace id: a GUID or a name of letters, digits, '_', '.' and '-',
-- never "." or "..".
-- Is `value` a workspace id we send as is: a GUID or a name of letters,
-- digits, '_', '.' and '-', not '.' or '..' (also what a Resource Manager
-- answer's customerId must be).
function M.is_workspace_id(value)
  return type(value) == "string" and value ~= "" and not value:find("[^A-Za-z0-9_.%-]")
    and value ~= "." and value ~= ".."
end

function M.workspace(name, value)
  M.text(name, value)
  if not M.is_workspace_id(value) then
    M.misuse(format("option '%s' must be a workspace GUID or a name of letters, digits, '_', '.' "
      .. "and '-' (not '.' or '..')", name))
  end
end

-- One path segment given by the caller (a Resource Manager field): it is
-- percent-encoded when sent, so only what a server could still take for a
-- separator or a dot segment is refused.
function M.segment(name, value)
  M.text(name, value)
  if value == "." or value == ".." or value:find("[/\\]") then
    M.misuse(format("option '%s' must not be '.' or '..' or contain '/' or '\\'", name))
  end
end

-- A resource id, `/`-separated non-empty segments none of which is "."
-- or ".." (nor holds a backslash); returns it with every segment
-- percent-encoded.
function M.resource(name, value)
  M.text(name, value)
  if value:sub(1, 1) ~= "/" then
    M.misuse(format("option '%s' must be a resource id starting with '/'", name))
  end
  local encoded = {}
  for segment in (value:sub(2) .. "/"):gmatch("([^/]*)/") do
    if segment == "" or segment == "." or segment == ".." or segment:find("\\", 1, true) then
      M.misuse(format("option '%s' must be '/'-separated non-empty segments, none '.' or '..' "
        .. "and none with '\\'", name))
    end
    encoded[#encoded + 1] = M.escape(segment)
  end
  return "/" .. concat(encoded, "/")
end

-- A tenant: a GUID or a domain name (labels of letters, digits, '_' and
-- '-' joined by single dots), which includes 'common', 'organizations'
-- and 'consumers'.
function M.tenant(name, value)
  M.text(name, value)
  local ok = #value <= 253
  for label in (value .. "."):gmatch("([^.]*)%.") do
    if label == "" or #label > 63 or label:find("[^A-Za-z0-9_%-]") then ok = false end
  end
  if not ok then
    M.misuse(format("option '%s' must be a tenant GUID or domain name (or 'common', "
      .. "'organizations', 'consumers')", name))
  end
end

-- Percent-encodes everything but unreserved characters.
function M.escape(s)
  return (s:gsub("[^" .. UNRESERVED .. "]", function(c) return format("%%%02X", c:byte()) end))
end

function M.seconds(name, v)
  if v ~= nil then
    M.type(name, v, "number")
    if not (v > 0 and v < math.huge) then M.misuse(format("option '%s' must be a positive number", name)) end
  end
end

-- Is s well-formed UTF-8 (RFC 3629): no stray continuation bytes, no
-- overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF?
function M.is_utf8(s)
  if not s:find("[\128-\255]") then return true end
  local byte, i, n = string.byte, 1, #s
  while i <= n do
    local c = byte(s, i)
    if c < 0x80 then
      i = i + 1
    else
      local need, lo, hi  -- continuation count, and the second byte's range
      if c >= 0xC2 and c <= 0xDF then need, lo, hi = 1, 0x80, 0xBF
      elseif c == 0xE0 then need, lo, hi = 2, 0xA0, 0xBF        -- not overlong
      elseif c == 0xED then need, lo, hi = 2, 0x80, 0x9F        -- no surrogates
      elseif c >= 0xE1 and c <= 0xEF then need, lo, hi = 2, 0x80, 0xBF
      elseif c == 0xF0 then need, lo, hi = 3, 0x90, 0xBF        -- not overlong
      elseif c >= 0xF1 and c <= 0xF3 then need, lo, hi = 3, 0x80, 0xBF
      elseif c == 0xF4 then need, lo, hi = 3, 0x80, 0x8F        -- <= U+10FFFF
      else return false end
      if i + need > n then return false end
      local b = byte(s, i + 1)
      if b < lo or b > hi then return false end
      for k = 2, need do
        b = byte(s, i + k)
        if b < 0x80 or b > 0xBF then return false end
      end
      i = i + need + 1
    end
  end
  return true
end

return M
