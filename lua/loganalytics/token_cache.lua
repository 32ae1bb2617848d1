--- The token cache of the credentials made in Lua (token functions, objects
-- of the caller's own, the Azure CLI), with the refresh policy of the C
-- credentials' cache (src/credential.c): a token is used until its
-- `refresh_in` when the identity platform sent one, else until five minutes
-- before expiry (half its lifetime when that is shorter); a renewal that
-- fails while the old token is still valid gives the old token.
--
-- Entries live in a store: a Lua table by default; loganalytics.nginx gives
-- an nginx shared dict, so every thread and worker shares one cache.
-- Internal: nothing here is part of the API.
-- @module loganalytics.token_cache
-- @local

local type, setmetatable = type, setmetatable
local time = os.time

local M = {}

--- Seconds before expiry a token is renewed (or half its lifetime).
M.REFRESH_MARGIN = 300

--- When a token got at `now` should be renewed.
-- @tparam number now epoch seconds
-- @tparam number expires_on epoch seconds
-- @tparam[opt] number refresh_in seconds, as the identity platform sends it
-- @treturn number epoch seconds
function M.refresh_on(now, expires_on, refresh_in)
  if type(refresh_in) == "number" and refresh_in > 0 then return now + refresh_in end
  local half = math.floor((expires_on - now) / 2)
  return expires_on - (half < M.REFRESH_MARGIN and half or M.REFRESH_MARGIN)
end

-- The default store: entries { token, expires_on, refresh_on } by scope.
local function table_store()
  local entries = {}
  return {
    get = function(_, scope) return entries[scope] end,
    set = function(_, scope, entry) entries[scope] = entry end,
    delete = function(_, scope) entries[scope] = nil end,
  }
end

local Cache = {}
Cache.__index = Cache

--- A cache over `store` (default: a Lua table). A store has
-- `get(self, scope)` returning an entry `{ token = , expires_on = ,
-- refresh_on = }` or nil, `set(self, scope, entry)` and `delete(self, scope)`.
function M.new(store)
  return setmetatable({ store = store or table_store() }, Cache)
end

--- The token for `scope`: from the cache until its refresh time, else from
-- `fetch(scope)` (returning `token, expires_on[, refresh_on]` or `nil, err`;
-- a token without an expiry is not kept). Returns `token, expires_on,
-- refresh_on` or `nil, err`.
function Cache:get(scope, fetch)
  local now = time()
  local entry = self.store:get(scope)
  if entry and now < entry.refresh_on then
    return entry.token, entry.expires_on, entry.refresh_on
  end
  local token, expires_on, refresh_on = fetch(scope)
  if not token then
    -- a renewal ahead of expiry failed: the old token still works
    if entry and now < entry.expires_on then
      return entry.token, entry.expires_on, entry.refresh_on
    end
    return nil, expires_on
  end
  if type(expires_on) ~= "number" then
    self.store:delete(scope)
    return token
  end
  refresh_on = refresh_on or M.refresh_on(now, expires_on)
  self.store:set(scope, { token = token, expires_on = expires_on, refresh_on = refresh_on })
  return token, expires_on, refresh_on
end

--- Forgets the token for `scope` (the API answered 401 to it).
function Cache:forget(scope)
  self.store:delete(scope)
end

return M
