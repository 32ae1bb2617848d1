--- Error objects: what `client:query` returns as `err` when the world fails.
-- Kinds: "service", "auth", "network", "timeout", "protocol" and "memory"
-- (memory ran out while a response was read; never retried).
-- Fields: kind, status, code, message, details, innererror, correlation_id,
-- request_id, retry_after, curl_code, attempts (each described in
-- @{loganalytics.error}); `tostring(err)` gives one readable line:
--
--     loganalytics: service error (HTTP 400 BadArgumentError): The request had
--     some invalid properties: Query could not be parsed at 'invalid' on line [1,11]
--
-- with the innermost `innererror` message after the top one, and
-- "(after N tries)" when retries were made. No secret ever appears in one.
-- Users need not require this module: its public part is the objects
-- themselves and @{is_error} (also `la.is_error`).
-- @module loganalytics.errors

local core = require "loganalytics.core"
local retry = require "loganalytics.retry"

local type, tostring, tonumber, setmetatable = type, tostring, tonumber, setmetatable
local concat = table.concat

local M = {}

local error_mt = { __name = "loganalytics.error" }
error_mt.__index = error_mt

--- The deepest `innererror` message, which is the one that says what is wrong.
-- @local
local function innermost_message(e)
  local found
  local inner = type(e) == "table" and e.innererror
  local depth = 0
  while type(inner) == "table" and depth < 100 do
    if type(inner.message) == "string" then found = inner.message end
    inner, depth = inner.innererror, depth + 1
  end
  return found
end

-- Service messages may hold line breaks; the line we give must not.
local function one_line(text)
  return (tostring(text):gsub("%s*[\r\n]+%s*", " "))
end

function error_mt.__tostring(e)
  local parts = { "loganalytics: ", e.kind or "unknown", " error" }
  if e.status or e.code then
    parts[#parts + 1] = " ("
    if e.status then parts[#parts + 1] = "HTTP " .. tostring(e.status) end
    if e.status and e.code then parts[#parts + 1] = " " end
    if e.code then parts[#parts + 1] = tostring(e.code) end
    parts[#parts + 1] = ")"
  end
  parts[#parts + 1] = ": " .. one_line(e.message or "no message")
  local inner = innermost_message(e)
  if inner and inner ~= e.message then parts[#parts + 1] = ": " .. one_line(inner) end
  if type(e.attempts) == "number" and e.attempts > 1 then
    parts[#parts + 1] = (" (after %d tries)"):format(e.attempts)
  end
  return concat(parts)
end

--- Makes an error object from its fields (internal: the client, the
-- credentials and loganalytics.nginx make them).
-- @tparam table fields kind, message, ... (the table becomes the object)
-- @tparam[opt] table secrets the maker's secret set (loganalytics.redact):
--   every string in the fields, nested ones too, is redacted with it
-- @treturn table the error object
-- @local
function M.new(fields, secrets)
  if secrets then secrets:error(fields) end
  return setmetatable(fields, error_mt)
end

--- Is `v` an error object made by this module (also `la.is_error`)?
-- A credential or a token function may return one as `nil, err`; the
-- client then passes it on unchanged.
-- @param v any value
-- @treturn boolean
function M.is_error(v)
  return type(v) == "table" and getmetatable(v) == error_mt
end

--- An error object from the service's `{"error": {...}}` body (decoded).
-- Also used for the `error` member of a partial result.
-- @local
function M.from_service(kind, info, status, headers, secrets)
  headers = headers or {}
  info = type(info) == "table" and info or {}
  return M.new({
    kind = kind,
    status = status,
    code = type(info.code) == "string" and info.code or nil,
    message = type(info.message) == "string" and info.message or "the service reported an error",
    details = info.details,
    innererror = info.innererror,
    correlation_id = info.correlationId,
    request_id = headers["x-ms-request-id"],
    retry_after = retry.retry_after(headers),
  }, secrets)
end

local function kind_for_status(status)
  if status == 401 or status == 403 then return "auth" end
  if status == 408 or status == 504 then return "timeout" end
  return "service"
end

-- A short, printable excerpt of a non-JSON body (a proxy's HTML page, say).
local function excerpt(body)
  local text = body:gsub("<[^>]*>", " "):gsub("%s+", " "):gsub("^ ", "")
  text = text:gsub("[%c\128-\255]", "?")
  if #text > 200 then text = text:sub(1, 200) .. "..." end
  return text
end

--- An error object for a non-2xx HTTP response. With `secrets` (the
-- maker's secret set), the body is redacted before it is read or cut into
-- an excerpt, and the error's fields after.
-- @local
function M.from_http(status, headers, body, secrets)
  local kind = kind_for_status(status)
  if secrets and body then body = secrets:text(body) end
  local decoded = body and body ~= "" and core.decode_json(body)
  if type(decoded) == "table" and type(decoded.error) == "table" then
    return M.from_service(kind, decoded.error, status, headers, secrets)
  end
  if type(decoded) == "table" and type(decoded.error) == "string" then
    -- identity-provider style: {"error": "invalid_client", "error_description": ...}
    local e = M.from_service(kind, { code = decoded.error, message = decoded.error_description },
                             status, headers, secrets)
    return e
  end
  local message = "HTTP " .. tostring(status)
  if body and body ~= "" then message = message .. ": " .. excerpt(body) end
  return M.from_service(kind, { message = message }, status, headers, secrets)
end

return M
