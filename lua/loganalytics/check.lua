--- Option checking shared by the client and the credentials: misuse
-- raises one clear line naming the option.
-- @module loganalytics.check

local type, pairs, tostring, getmetatable, error = type, pairs, tostring, getmetatable, error
local format = string.format

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

-- Hosts a plain http:// endpoint may use without allow_http.
function M.is_loopback(host)
  host = host:lower()
  return host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

function M.endpoint(name, url, allow_http)
  M.text(name, url)
  local scheme, host = url:match("^(%a[%w+.-]*)://([^/:?#]+)")
  if host and host:sub(1, 1) == "[" then host = url:match("^%a[%w+.-]*://(%[[^%]]*%])") end
  if not scheme or not host then
    M.misuse(format("option '%s' must be an http(s) URL, got '%s'", name, url))
  end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then
    M.misuse(format("option '%s' must use https, got '%s'", name, scheme))
  end
  if scheme == "http" and not allow_http and not M.is_loopback(host) then
    M.misuse(format("option '%s' is plain http to a non-loopback host; use https or allow_http = true", name))
  end
  return (url:gsub("/+$", ""))
end

-- Percent-encodes everything but unreserved characters (and "/" when asked).
function M.escape(s, keep_slash)
  local pattern = keep_slash and "[^%w%-%._~/]" or "[^%w%-%._~]"
  return (s:gsub(pattern, function(c) return format("%%%02X", c:byte()) end))
end

function M.seconds(name, v)
  if v ~= nil then
    M.type(name, v, "number")
    if not (v > 0 and v < math.huge) then M.misuse(format("option '%s' must be a positive number", name)) end
  end
end

return M
