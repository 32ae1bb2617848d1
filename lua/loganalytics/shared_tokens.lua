--- A credential's token cache kept in an nginx `lua_shared_dict`, shared by
-- every worker (and every thread VM of loganalytics.nginx): one token
-- request for all of them, even when many queries start at once. One asks,
-- holding a lock key in the dict (`add`: atomic); the others use the token
-- still valid, or wait for the new one. Entries keep the refresh time the
-- credential's own cache gave, so both renew together.
--
-- How to wait is the caller's: loganalytics.resty sleeps with ngx.sleep
-- (the event loop goes on), loganalytics.nginx with core.sleep (in its
-- pool thread).
-- @module loganalytics.shared_tokens

local core = require "loganalytics.core"
local credentials = require "loganalytics.credentials"

local tonumber, pcall, error = tonumber, pcall, error

local M = {}

-- The longest one holder may keep a scope's fetch lock; its expiry frees the
-- lock should the holder never get to release it.
local FETCH_LOCK_SECONDS = 30
local FETCH_WAIT_STEP = 0.02

--- Wraps `credential` so its tokens live in the shared dict `dict_name`.
-- @param credential a credential object (`la.credentials.*`)
-- @tparam string dict_name a `lua_shared_dict`'s name
-- @tparam function sleep `sleep(seconds)` while another holds the lock
-- @return a credential
function M.wrap(credential, dict_name, sleep)
  local dict = ngx.shared[dict_name]
  if not dict then error("loganalytics: no lua_shared_dict named '" .. dict_name .. "'", 0) end

  -- entries as "refresh_on expires_on token", kept until the token expires
  local store = {
    get = function(_, scope)
      local value = dict:get(scope)
      local refresh_on, expires_on, token = (value or ""):match("^(%d+) (%d+) (.+)$")
      if not token then return nil end
      return { token = token, expires_on = tonumber(expires_on), refresh_on = tonumber(refresh_on) }
    end,
    set = function(_, scope, entry)
      local ttl = entry.expires_on - os.time()
      if ttl > 0 then
        dict:set(scope, ("%d %d %s"):format(entry.refresh_on, entry.expires_on, entry.token), ttl)
      end
    end,
    delete = function(_, scope) dict:delete(scope) end,
  }

  local function fetch(scope, transport)
    local lock = "fetching " .. scope
    local deadline = core.now() + FETCH_LOCK_SECONDS
    repeat
      -- another holder may have stored a new token meanwhile
      local entry = store:get(scope)
      if entry and os.time() < entry.refresh_on then
        return entry.token, entry.expires_on, entry.refresh_on
      end
      if dict:add(lock, true, FETCH_LOCK_SECONDS) then
        local ok, token, expires_on, refresh_on = pcall(credential.get_token, credential, scope, transport)
        dict:delete(lock)
        if not ok then error(token, 0) end
        return token, expires_on, refresh_on
      end
      -- another is renewing: the old token serves until it expires
      if entry and os.time() < entry.expires_on then
        return entry.token, entry.expires_on, entry.refresh_on
      end
      sleep(FETCH_WAIT_STEP)
    until core.now() > deadline
    -- the lock outlived its holder's fetch: ask on our own
    return credential:get_token(scope, transport)
  end

  return credentials._shared(credential, store, fetch)
end

return M
