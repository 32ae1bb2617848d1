--- The retry policy: what is retried, and how long to wait before the next
-- try (exponential backoff with jitter, or what the service asked for).
-- @module loganalytics.retry

local core = require "loganalytics.core"
local numbers = require "loganalytics.numbers"

local tonumber, type, min, random = tonumber, type, math.min, math.random

local M = {}

M.DEFAULTS = { max_retries = 3, retry_delay = 0.8, retry_max_delay = 60 }

-- Throttling and the service's passing failures. 400/401/403/404 never:
-- they will fail the same way again (401 gets its one token renewal
-- elsewhere).
local RETRYABLE_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true,
                           [503] = true, [504] = true }

--- Seconds the service asked us to wait (x-ms-retry-after-ms, or
-- Retry-After as seconds or an HTTP date), or nil.
function M.retry_after(headers)
  if type(headers) ~= "table" then return nil end
  -- "1.5", never "1,5": header numbers do not follow the process's locale
  local ms = numbers.tonumber(headers["x-ms-retry-after-ms"] or "")
  if ms and ms >= 0 then return ms / 1000 end
  local value = headers["retry-after"]
  if not value then return nil end
  local seconds = numbers.tonumber(value)
  if seconds and seconds >= 0 then return seconds end
  local at = core.parse_http_date(value)
  if at then return math.max(0, at - os.time()) end
  return nil
end

--- Is this response (from the core) or failure worth another try?
function M.retryable(response)
  if response.transport then
    -- connection failures (refused, reset, DNS): yes; our own timeouts and
    -- malformed transfers: no, they would most likely happen again
    return response.transport.kind == "network"
  end
  return RETRYABLE_STATUS[response.status] == true
end

--- The wait before try number `attempt + 1` (attempt counts from 1).
function M.delay(policy, attempt, response)
  local asked = M.retry_after(response and response.headers)
  if asked then return asked end
  local base = min(policy.retry_max_delay, policy.retry_delay * 2 ^ (attempt - 1))
  -- jitter: 80% to 120%, so clients throttled together do not return together
  return min(policy.retry_max_delay, base * (0.8 + 0.4 * random()))
end

--- The wait before try number `attempt + 1`, or nil when it would be longer
-- than `retry_max_delay` or than `time_left` (seconds left of the query's
-- timeout): such a wait is not waited, the failure is the outcome. This
-- caps the service's Retry-After too (`Retry-After: 100000` is no wait).
function M.wait(policy, attempt, response, time_left)
  local wait = M.delay(policy, attempt, response)
  if not (wait <= policy.retry_max_delay and wait <= time_left) then return nil end
  return wait
end

return M
