--- Redaction: the one way secrets are kept out of what leaves the module.
-- Each client and each credential owns a secret set: its api key, static
-- token, client secret, certificate password, refresh token, code, and every
-- access token it obtained. Every error object it makes (`errors.new(fields,
-- secrets)`, so also `errors.from_http` and `errors.from_service`) and every
-- log line it emits is passed through it, because servers quote requests
-- back: a gateway's HTML 404 with the URL and its `api_key=`, a 502 page with
-- the Authorization header, an identity endpoint echoing the form.
--
-- A secret is replaced by `[REDACTED]` in every form it travels or is
-- quoted in: as is, URL-encoded (either hex case, `+` for spaces),
-- JSON-escaped, HTML-escaped, as the base64 of HTTP basic auth, and (for
-- bytes beyond ASCII) as a server reading it as Latin-1 would quote it. Anything
-- shaped like a JWT (`eyJ...`.`eyJ...`) is redacted too, known or not.
-- Bodies are redacted before they are cut into excerpts, so no cut-off
-- piece of a secret survives. The set is opaque: its methods close over the
-- secrets, which no `pairs` or `tostring` reaches.
--
-- (Lua strings are immutable and interned: the copies Lua holds cannot be
-- wiped, only left to the collector. The C core wipes its own copies.)
-- @module loganalytics.redact
-- @local

local type, pairs, ipairs, setmetatable = type, pairs, ipairs, setmetatable
local format, concat, sort, remove = string.format, table.concat, table.sort, table.remove
local floor = math.floor

local M = {}

M.MARK = "[REDACTED]"
local MARK = M.MARK

-- access tokens kept for redaction, newest last: older ones are no longer sent
local ROLLING_MAX = 8
-- a JWT: header and payload are base64url JSON objects, so both begin "eyJ"
local JWT_PATTERN = "eyJ[%w_%-]+%.eyJ[%w_%-]+%.?[%w_%-]*"
local MAX_DEPTH = 100

local BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- Standard base64 with padding (Lua 5.1 has no bit operators: arithmetic).
function M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = c and 4 or b and 3 or 2
    for k = 1, 4 do
      local index = floor(n / 64 ^ (4 - k)) % 64
      out[#out + 1] = k <= chars and BASE64:sub(index + 1, index + 1) or "="
    end
  end
  return concat(out)
end

local function url_encoded(s, hex, space)
  return (s:gsub("[^%w%-%._~]", function(c)
    if c == " " and space then return space end
    return format(hex, c:byte())
  end))
end

local JSON_ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                       ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["/"] = "\\/" }
local HTML_ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
                       ["'"] = "&#x27;" }
local HTML_ESCAPES_DECIMAL = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;",
                               ["'"] = "&#39;" }

-- The bytes of s read as ISO-8859-1 and written as UTF-8: what a server
-- that decodes header values as Latin-1 (Python's http.server) quotes back.
local function latin1_as_utf8(s)
  return (s:gsub("[\128-\255]", function(c)
    local b = c:byte()
    return string.char(192 + floor(b / 64), 128 + b % 64)
  end))
end

-- The forms a secret travels or is quoted in.
local function forms_of(secret)
  local json_escaped = secret:gsub('[%c"\\]', function(c)
    return JSON_ESCAPES[c] or format("\\u%04x", c:byte())
  end)
  return {
    secret,
    url_encoded(secret, "%%%02X"),
    url_encoded(secret, "%%%02x"),
    url_encoded(secret, "%%%02X", "+"),
    json_escaped,
    (json_escaped:gsub("/", "\\/")),
    (secret:gsub("[&<>\"']", HTML_ESCAPES)),
    (secret:gsub("[&<>\"']", HTML_ESCAPES_DECIMAL)),
  }
end

-- Replaces every occurrence of `find` in `text` (plain, no patterns).
local function replace_plain(text, find)
  local at = text:find(find, 1, true)
  if not at then return text end
  local parts, from = {}, 1
  while at do
    parts[#parts + 1] = text:sub(from, at - 1)
    parts[#parts + 1] = MARK
    from = at + #find
    at = text:find(find, from, true)
  end
  parts[#parts + 1] = text:sub(from)
  return concat(parts)
end

--- A new, empty secret set.
-- @treturn table with methods `add(secret[, rolling])`, `add_basic(user, password)`,
--   `text(s)` and `error(e)`
function M.new()
  local kept, rolling = {}, {}   -- secret -> true; access tokens, oldest first
  local forms                    -- every form of every secret, longest first (cache)

  local set = {}

  --- Adds a secret. `rolling`: an access token, of which only the newest
  -- few are kept (a long-lived client obtains one an hour).
  function set.add(_, secret, is_rolling)
    if type(secret) ~= "string" or secret == "" or kept[secret] then return end
    kept[secret] = true
    forms = nil
    if is_rolling then
      rolling[#rolling + 1] = secret
      if #rolling > ROLLING_MAX then kept[remove(rolling, 1)] = nil end
    end
  end

  --- Adds HTTP basic auth credentials: each part, and the header's base64.
  function set.add_basic(self, user, password)
    self:add(user)
    self:add(password)
    if type(user) == "string" then self:add(M.base64(user .. ":" .. (password or ""))) end
  end

  local function all_forms()
    if forms then return forms end
    local seen, list = {}, {}
    for secret in pairs(kept) do
      local variants = forms_of(secret)
      local mangled = latin1_as_utf8(secret)
      if mangled ~= secret then
        for _, form in ipairs(forms_of(mangled)) do variants[#variants + 1] = form end
      end
      for _, form in ipairs(variants) do
        if form ~= "" and not seen[form] then
          seen[form] = true
          list[#list + 1] = form
        end
      end
    end
    -- longest first: a secret inside another is not left half-replaced
    sort(list, function(a, b) return #a > #b end)
    forms = list
    return list
  end

  --- `s` with every secret (in every form) replaced by `[REDACTED]`.
  function set.text(_, s)
    if type(s) ~= "string" then return s end
    for _, form in ipairs(all_forms()) do s = replace_plain(s, form) end
    return (s:gsub(JWT_PATTERN, MARK))
  end

  local function walk(self, t, depth, seen)
    if seen[t] or depth > MAX_DEPTH then return end
    seen[t] = true
    local renamed
    for k, v in pairs(t) do
      if type(v) == "string" then
        t[k] = self:text(v)
      elseif type(v) == "table" then
        walk(self, v, depth + 1, seen)
      end
      if type(k) == "string" and self:text(k) ~= k then
        renamed = renamed or {}
        renamed[#renamed + 1] = k
      end
    end
    for _, k in ipairs(renamed or {}) do
      t[self:text(k)], t[k] = t[k], nil
    end
  end

  --- Redacts every string of an error object (or any table) in place, keys
  -- too, nested tables included; returns it.
  function set.error(self, e)
    if type(e) == "table" then walk(self, e, 0, {}) end
    return e
  end

  return setmetatable(set, { __tostring = function() return "loganalytics.redact set" end,
                             __metatable = false })
end

return M
