-- Many transfers at once for a client: client:query_many, client:export and
-- client:batch (documented in loganalytics.lua's LDoc, with the client).
-- Internal: installed on the client class by loganalytics.lua, which hands
-- over the pieces of its own query path (prepare, the one retry policy,
-- outcome/final, the one-transfer-per-client rule), so a query here is
-- checked, authorized, retried and turned into a result or error exactly as
-- client:query's.

local core = require "loganalytics.core"
local check = require "loganalytics.check"
local errors = require "loganalytics.errors"
local timespan = require "loganalytics.timespan"

local type, pairs, ipairs, tostring, pcall, error, math_type =
  type, pairs, ipairs, tostring, pcall, error, math.type
local format, concat, insert, remove = string.format, table.concat, table.insert, table.remove
local misuse, check_type, check_known, is_callable = check.misuse, check.type, check.known, check.is_callable

local M = {}

-- Reads of a body file, and rows made per take of the handover decoder.
local READ_BYTES = 64 * 1024
local HANDOVER_BATCH = 1000
-- The service's limits: about 5 queries at once per user; 10 requests per $batch.
local DEFAULT_CONCURRENCY = 5
local DEFAULT_EXPORT_CONCURRENCY = 4
local BATCH_MAX = 10
local DEFAULT_MIN_SLICE = 1
local DEFAULT_SLICES = 16
-- Code and name of the service's "result set too large" (E_QUERY_RESULT_SET_TOO_LARGE,
-- 0x80DA0003 as an int32), the innermost error of a result cut at the row or size cap.
local TOO_LARGE_CODE = "-2133196797"

local function check_count(name, v, max)
  check_type(name, v, "number")
  if not (v >= 1 and v <= max and v == math.floor(v)) then
    misuse(format("option '%s' must be a whole number from 1 to %d", name, max))
  end
end

-- Is `err` (the service's error as sent, decoded; or an error object) the
-- truncation at the row or size cap? Looks through every nesting
-- (`details`, `innererror`): both spellings the service uses.
local function is_too_large(err, depth)
  depth = depth or 0
  if type(err) ~= "table" or depth > 20 then return false end
  if tostring(err.code) == TOO_LARGE_CODE then return true end
  if type(err.message) == "string" and err.message:find("E_QUERY_RESULT_SET_TOO_LARGE", 1, true) then
    return true
  end
  for _, v in pairs(err) do
    if type(v) == "table" and is_too_large(v, depth + 1) then return true end
  end
  return false
end
M.is_too_large = is_too_large

-- The items of a query list: `{ kql, opts }` or `{ kql = ..., <query options> }`.
local function list_items(list, what)
  check_type(what, list, "table")
  local n = #list
  for key in pairs(list) do
    if math_type and math_type(key) ~= "integer" or type(key) ~= "number" or key < 1 or key > n
        or key ~= math.floor(key) then
      misuse(what .. " must be an array of queries")
    end
  end
  local items = {}
  for i = 1, n do
    local item = list[i]
    if type(item) ~= "table" then
      misuse(format("%s[%d] must be a table { kql, opts } or { kql = ..., options }, got %s",
        what, i, type(item)))
    end
    local kql, opts
    if item.kql ~= nil then
      if item[1] ~= nil or item[2] ~= nil then
        misuse(format("%s[%d]: give either { kql, opts } or { kql = ..., options }", what, i))
      end
      kql, opts = item.kql, {}
      for k, v in pairs(item) do if k ~= "kql" then opts[k] = v end end
    else
      kql, opts = item[1], item[2]
      for k in pairs(item) do
        if k ~= 1 and k ~= 2 then misuse(format("%s[%d]: unknown field '%s'", what, i, tostring(k))) end
      end
    end
    items[i] = { kql = kql, opts = opts }
  end
  return items
end

function M.install(Client, the)
  local prepare, final, outcome, decide = the.prepare, the.final, the.outcome, the.retry_decision
  local new_tries, time_left, release, start_query_transfer =
    the.new_tries, the.time_left, the.release, the.start_query_transfer
  local remember_sent, redact, STEP_MS = the.remember_sent, the.redact, the.STEP_MS

  -- Takes the client for a run of many transfers (the client's active
  -- transfer: a call from inside one of its callbacks is "busy"); `stop`
  -- cancels what runs.
  local function hold(self, stop)
    if self.io.per_call then
      -- a cosocket client (loganalytics.resty) must not block its event loop on libcurl
      misuse("query_many and export run on libcurl: not on a loganalytics.resty client")
    end
    return start_query_transfer(self, stop)
  end

  -- A scheduler of transfers on one core.group: at most `concurrency` at
  -- once; a job's retries are scheduled (not slept) by the one retry
  -- policy. Back-pressure: a 429 holds every new start until its
  -- Retry-After has passed, and lowers the number allowed in flight to what
  -- the service still admits (those in flight then); each answer that is not
  -- a 429 raises it again by 1/limit (additive increase), up to `concurrency`.
  -- job: { request = fn(seconds), scope =, timeout =, body_file =, done = fn(response, attempts) }
  local function new_scheduler(self, concurrency)
    local s = {
      group = core.group { max_connections = concurrency },
      queue = {},            -- jobs waiting to start, in order (retries first)
      running = {},          -- client -> job
      idle = {},             -- clients free for the next transfer
      count = 0,             -- transfers under way
      hold_until = 0,        -- back-pressure: no start before this (core.now())
      limit = concurrency,   -- back-pressure: transfers allowed in flight now
      renewed = {},          -- scope -> { at = core.now(), ok = } of the last token renewal
    }
    local log, secrets = self.log, self.secrets

    function s.submit(job, first)
      job.ready_at = job.ready_at or 0
      if first then insert(s.queue, 1, job) else s.queue[#s.queue + 1] = job end
    end

    local function start(job)
      if not job.tries then
        job.tries = new_tries(job.scope, job.timeout, nil, function() return false end)
        -- one renewal for all: a 401 to a request sent before the last
        -- renewal retries with the new token, without renewing again
        job.tries.forget = function(scope)
          local last = s.renewed[scope]
          if last and job.started_at < last.at then return last.ok end
          last = { at = core.now() }
          s.renewed[scope] = last
          last.ok = self.forget(scope)
          return last.ok
        end
      end
      job.started_at = core.now()
      local req = job.request(time_left(job.tries))
      req.body_file = job.body_file
      local authorized, err = self.authorize(req, job.scope)
      if not authorized then return job.done(nil, nil, secrets:error(err)) end
      remember_sent(secrets, req)
      log("debug", "POST " .. redact(req.url))
      local client = remove(s.idle) or core.new(s.group)
      client:start(req)
      s.running[client] = job
      s.count = s.count + 1
    end

    -- Starts what may start, then drives the transfers for up to `ms`.
    function s.pump(ms)
      local now = core.now()
      local next_ready = math.huge
      local i = 1
      while i <= #s.queue and s.count < math.floor(s.limit) do
        local job = s.queue[i]
        if now >= s.hold_until and job.ready_at <= now then
          remove(s.queue, i)
          start(job)
        else
          next_ready = math.min(next_ready, math.max(job.ready_at, s.hold_until))
          i = i + 1
        end
      end
      if s.count == 0 then
        local wait = math.min(ms / 1000, next_ready - core.now())
        if wait > 0 and wait < math.huge then core.sleep(wait) end
        return
      end
      local finished = s.group:wait(ms)
      for _, client in ipairs(finished) do
        local job = s.running[client]
        local response = job and client:step(0)
        if response then
          s.running[client] = nil
          s.count = s.count - 1
          s.idle[#s.idle + 1] = client
          if response.status == 429 then
            s.limit = math.max(1, s.count)
          else
            s.limit = math.min(concurrency, s.limit + 1 / s.limit)
          end
          local wait = decide(self, job.tries, response)
          if wait then
            now = core.now()
            if response.status == 429 then s.hold_until = math.max(s.hold_until, now + wait) end
            job.ready_at = now + wait
            s.submit(job, true)
          else
            job.done(response, job.tries.attempt)
          end
        end
      end
    end

    function s.idle_now() return s.count == 0 and #s.queue == 0 end

    function s.close()
      for client in pairs(s.running) do pcall(client.cancel, client); pcall(client.close, client) end
      for _, client in ipairs(s.idle) do pcall(client.close, client) end
      s.running, s.idle, s.count = {}, {}, 0
      pcall(s.group.close, s.group)
    end
    return s
  end

  -- client:query_many, documented with the client in loganalytics.lua
  function Client:query_many(list, opts)
    if getmetatable(self) ~= Client then
      error("loganalytics: use client:query_many(list), not client.query_many(list)", 2)
    end
    local items = list_items(list, "query_many's list")
    if opts == nil then opts = {} end
    check_type("opts", opts, "table")
    check_known(opts, { concurrency = true, on_result = true }, "query_many")
    local concurrency = opts.concurrency or DEFAULT_CONCURRENCY
    check_count("concurrency", concurrency, 100)
    local on_result = opts.on_result
    if on_result ~= nil and not is_callable(on_result) then
      misuse("option 'on_result' must be a function, got " .. type(on_result))
    end
    local answers, left, jobs = {}, #items, {}
    -- every query checked before a request is sent (a workspace lookup too)
    for i, item in ipairs(items) do
      if type(item.opts) == "table" and item.opts.on_progress ~= nil then
        misuse(format("query_many's list[%d]: on_progress is not for query_many (see on_result)", i))
      end
      prepare(self, item.kql, item.opts, nil, nil, false)
    end
    local lookups = {}  -- one failed lookup per named workspace, for all the queries naming it
    for i, item in ipairs(items) do
      local request, scope, timeout = prepare(self, item.kql, item.opts, nil, nil, lookups)
      jobs[i] = { request = request, scope = scope, timeout = timeout, failed = not request and scope or nil,
                  done = function(response, attempts, err)
        local result
        if response then result, err = final(response, attempts, self.secrets) end
        answers[i] = { result = result, err = err }
        left = left - 1
        if on_result then on_result(i, result, err) end
      end }
    end
    local s
    local transfer = hold(self, function() if s then s.close() end end)
    s = new_scheduler(self, concurrency)
    local ok, err = pcall(function()
      for _, job in ipairs(jobs) do
        if job.failed then job.done(nil, nil, job.failed) else s.submit(job) end
      end
      while left > 0 do s.pump(STEP_MS) end
    end)
    s.close()
    release(self, transfer)
    if not ok then error(err, 0) end
    return answers
  end

  -- Feeds a file to a decoder in READ_BYTES reads; `between()` after each.
  local function feed_file(path, dec, between)
    local f, err = io.open(path, "rb")
    if not f then return nil, errors.new { kind = "protocol", message = "body file: " .. tostring(err) } end
    while true do
      local chunk = f:read(READ_BYTES)
      if not chunk then break end
      local ok, ferr = dec:feed(chunk)
      if not ok then f:close(); return nil, ferr end
      if between then
        local bok, berr = pcall(between)
        if not bok then f:close(); error(berr, 0) end
        if berr == false then f:close(); return false end
      end
    end
    f:close()
    return true
  end

  local function slice_text(slice)
    return timespan.format { start = slice.start, finish = slice.finish }
  end

  -- client:export, documented with the client in loganalytics.lua
  function Client:export(kql, opts)
    if getmetatable(self) ~= Client then
      error("loganalytics: use client:export(kql, opts), not client.export(kql, opts)", 2)
    end
    check_type("opts", opts, "table")
    local qopts = {}
    local own = { timespan = true, on_row = true, on_progress = true, concurrency = true,
                  slice = true, min_slice = true }
    for k, v in pairs(opts) do if not own[k] then qopts[k] = v end end
    if opts.timespan == nil then misuse("export needs option 'timespan' with a start and an end") end
    local ok, start_at, finish_at = pcall(timespan.interval, opts.timespan)
    if not ok then misuse("option " .. start_at) end
    local on_row = opts.on_row
    if not is_callable(on_row) then misuse("export needs option 'on_row', a function") end
    local on_progress = opts.on_progress
    if on_progress ~= nil and not is_callable(on_progress) then
      misuse("option 'on_progress' must be a function, got " .. type(on_progress))
    end
    local concurrency = opts.concurrency or DEFAULT_EXPORT_CONCURRENCY
    check_count("concurrency", concurrency, 16)
    local width, min_slice = (finish_at - start_at) / DEFAULT_SLICES, DEFAULT_MIN_SLICE
    for _, name in ipairs { "slice", "min_slice" } do
      if opts[name] ~= nil then
        local sok, seconds = pcall(timespan.seconds, opts[name])
        if not sok then misuse("option '" .. name .. "': " .. seconds) end
        if name == "slice" then width = seconds else min_slice = seconds end
      end
    end
    if opts.shape ~= nil then misuse("option 'shape' is not for export (rows go to on_row)") end
    -- checks the query and its options once (misuse raises here); resolves a
    -- named workspace, so the slices find its id in the client's cache
    qopts.timespan = opts.timespan
    local checked, lookup_err = prepare(self, kql, qopts)
    if not checked then return nil, lookup_err end
    local values = checked(1)  -- datetime, dynamic: how cells are given

    local s
    local slices, head = {}, 1        -- the slices not yet handed over, in order
    local cursor = start_at           -- where the next new slice starts
    local files = {}                  -- temp files not yet removed
    local summary = { rows = 0, slices = 0, splits = 0 }
    local failure                     -- the first slice's error
    local on_disk = 0                 -- slices started, not yet handed over
    -- the first slice runs alone until one comes back whole: the width that
    -- fits the caps is found before `concurrency` slices are cut at once
    local probing = true

    local function drop(slice)
      if slice.file then os.remove(slice.file); files[slice.file] = nil; slice.file = nil end
    end
    -- microseconds: the timespan's precision; both halves share the same middle
    local function micro(t) return math.floor(t * 1e6 + 0.5) / 1e6 end

    local function launch(slice)
      slice.state = "running"
      on_disk = on_disk + 1
      slice.file = os.tmpname()
      files[slice.file] = true
      qopts.timespan = { start = slice.start, finish = slice.finish }
      local request, scope, timeout = prepare(self, kql, qopts)
      s.submit { request = request, scope = scope, timeout = timeout, body_file = slice.file,
        done = function(response, attempts, err)
          if failure then return drop(slice) end
          if response then
            if not response.status or response.status < 200 or response.status > 299
                or response.transport or response.parse_error then
              local _
              _, err = final(response, attempts, self.secrets)
              err = err or errors.new { kind = "protocol", message = "no answer" }
            else
              -- the answer is on disk: count its rows, see whether it was cut
              local dec = core.decoder { count_only = true }
              local fok, ferr = feed_file(slice.file, dec)
              local result
              if fok then result, ferr = dec:finish() end
              dec:close()
              if not result then
                err = errors.is_error(ferr) and ferr or errors.new { kind = "protocol", message = tostring(ferr) }
              elseif result.error ~= nil and is_too_large(result.error) then
                drop(slice)
                on_disk = on_disk - 1
                local half = (slice.finish - slice.start) / 2
                if half < min_slice then
                  err = errors.new { kind = "service", status = response.status, code = "PartialError",
                    message = format("slice %s is cut at the service's result cap and halving it would go"
                      .. " below min_slice (%s s)", slice_text(slice), tostring(min_slice)) }
                else
                  local mid = micro(slice.start + half)
                  local at
                  for i = head, #slices do if slices[i] == slice then at = i break end end
                  slices[at] = { start = slice.start, finish = mid, state = "new" }
                  insert(slices, at + 1, { start = mid, finish = slice.finish, state = "new" })
                  summary.splits = summary.splits + 1
                  if half < width then width = half end
                  return
                end
              elseif result.error ~= nil then
                response.result = result
                local _, perr = outcome(response, self.secrets)
                err = perr
              else
                slice.rows = 0
                for _, t in ipairs(result.tables or {}) do slice.rows = slice.rows + (t.row_count or 0) end
                slice.state = "ready"
                probing = false
                return
              end
            end
          end
          err.message = format("slice %s: %s", slice_text(slice), tostring(err.message))
          failure = err
        end }
    end

    -- Starts new slices while fewer than `concurrency` are in flight or on disk.
    local function fill()
      while on_disk < (probing and 1 or concurrency) and not failure do
        local nxt
        for i = head, #slices do
          if slices[i].state == "new" then nxt = slices[i] break end
        end
        if not nxt then
          if cursor >= finish_at then return end
          local finish = math.min(micro(cursor + width), finish_at)
          if finish_at - finish < min_slice / 2 then finish = finish_at end
          nxt = { start = cursor, finish = finish, state = "new" }
          slices[#slices + 1] = nxt
          cursor = finish
        end
        launch(nxt)
      end
    end

    local function pump(ms)
      fill()
      s.pump(ms)
      if failure then error(failure, 0) end
    end

    local function total()
      local pending = #slices - head + 1
      return summary.slices + pending + math.ceil((finish_at - cursor) / width - 1e-9)
    end

    -- Hands a slice's rows over from its file (a second decoder pass), the
    -- other transfers driven between reads.
    local canonical = {}  -- "name, columns" -> the table given to on_row for every slice
    local function hand_over(slice)
      local dec = core.decoder { take = true, batch = HANDOVER_BATCH,
                                 datetime = values.datetime, dynamic = values.dynamic }
      local stopped = false
      local seen = {}  -- this slice's table -> its canonical one
      local function same_table(tbl)
        local parts = { tostring(tbl.name) }
        for _, col in ipairs(tbl.columns or {}) do parts[#parts + 1] = tostring(col.name) .. ":" .. tostring(col.type) end
        local key = concat(parts, "\0")
        local one = canonical[key]
        if not one then one = tbl; canonical[key] = tbl end
        seen[tbl] = one
        return one
      end
      local function deliver()
        repeat
          local _, more, list = dec:take()
          if list then
            for i = 1, #list, 2 do
              local tbl = list[i + 1]
              if on_row(list[i], seen[tbl] or same_table(tbl)) == false then stopped = true return false end
              summary.rows = summary.rows + 1
            end
          end
        until not more
        pump(0)
      end
      local before = summary.rows
      local fok, ferr = feed_file(slice.file, dec, deliver)
      if fok and not stopped then deliver() end
      if fok == nil then failure = ferr end
      if fok and not stopped then
        local _, err = dec:finish()
        failure = err
        if not err and summary.rows - before ~= slice.rows then
          failure = errors.new { kind = "protocol", message = format("slice %s: %d rows read back, %d counted",
            slice_text(slice), summary.rows - before, slice.rows) }
        end
      end
      if failure then dec:close(); error(failure, 0) end
      dec:close()
      drop(slice)
      on_disk = on_disk - 1
      summary.slices = summary.slices + 1
      head = head + 1
      return stopped
    end

    local transfer = hold(self, function() if s then s.close() end end)
    s = new_scheduler(self, concurrency)
    local run_ok, run_err = pcall(function()
      while true do
        fill()
        local slice = slices[head]
        if not slice then break end
        while slice.state ~= "ready" do
          pump(STEP_MS)
          slice = slices[head]  -- (a halved slice is replaced in place)
        end
        if hand_over(slice) then summary.stopped = true break end
        if on_progress then on_progress(summary.slices, total(), summary.rows) end
      end
    end)
    s.close()
    for path in pairs(files) do os.remove(path) end
    release(self, transfer)
    if not run_ok then
      if run_err == failure then return nil, failure end
      error(run_err, 0)  -- misuse, busy, or the caller's own error from on_row / on_progress
    end
    return summary
  end

  -- client:batch, documented with the client in loganalytics.lua
  function Client:batch(list)
    if getmetatable(self) ~= Client then
      error("loganalytics: use client:batch(list), not client.batch(list)", 2)
    end
    local items = list_items(list, "batch's list")
    for i, item in ipairs(items) do
      local opts = item.opts or {}
      check_type("opts", opts, "table")
      if opts.on_row ~= nil or opts.on_progress ~= nil or opts.resource ~= nil then
        misuse(format("batch's list[%d]: on_row, on_progress and resource are not for batch", i))
      end
      prepare(self, item.kql, opts, nil, nil, false)
    end
    -- then named workspaces are resolved; a query whose lookup failed is not sent
    local entries, answers, lookups = {}, {}, {}
    for i, item in ipairs(items) do
      local opts = item.opts or {}
      local request, lookup_err = prepare(self, item.kql, opts, nil, nil, lookups)
      if not request then
        answers[i] = { err = lookup_err }
      else
        local req = request(1)
        local prefer
        for _, line in ipairs(req.headers) do
          local v = type(line) == "string" and line:match("^Prefer: (.*)$")
          if v then prefer = v end
        end
        -- the workspace id (a named workspace's customer id), as the URL has it
        local ws = req.url:match("/v1/workspaces/([^/]+)/query$")
        entries[#entries + 1] = { index = i, workspace = ws, body = req.body, prefer = prefer,
          values = { datetime = req.datetime, dynamic = req.dynamic, shape = req.shape } }
      end
    end
    for first = 1, #entries, BATCH_MAX do
      local last = math.min(first + BATCH_MAX - 1, #entries)
      local parts = {}
      for i = first, last do
        local e = entries[i]
        -- ids, workspace ids and Prefer values are checked plain text: no escaping needed
        parts[#parts + 1] = format('{"id":"%d","workspace":"%s","path":"/query","method":"POST","body":%s%s}',
          i - first + 1, e.workspace, e.body,
          e.prefer and format(',"headers":{"Prefer":"%s"}', e.prefer) or "")
      end
      local body = '{"requests":[' .. concat(parts, ",") .. "]}"
      local response, err = the.send(self, self.endpoint .. "/v1/$batch", body)
      if not response then return nil, err end
      local got, berr = core.batch_answers(response.body or "")
      if not got then
        return nil, errors.new({ kind = "protocol", status = response.status,
          message = "$batch answer: " .. tostring(berr) }, self.secrets)
      end
      local by_id = {}
      for _, a in ipairs(got) do by_id[tostring(a.id)] = a end
      for i = first, last do
        local a = by_id[tostring(i - first + 1)]
        local result, qerr
        if not a then
          qerr = errors.new { kind = "protocol", message = "the $batch answer has no response with id " .. (i - first + 1) }
        else
          local headers = {}
          for k, v in pairs(a.headers or {}) do headers[tostring(k):lower()] = v end
          local one = { status = a.status, headers = headers, body = a.body }
          if type(a.status) == "number" and a.status >= 200 and a.status <= 299 then
            local dec = core.decoder(entries[i].values)
            local fok, ferr = dec:feed(a.body or "")
            if fok then one.result, ferr = dec:finish() end
            dec:close()
            if not one.result then one.parse_error = ferr and (ferr.message or tostring(ferr)) or "no body" end
          end
          result, qerr = final(one, nil, self.secrets)
        end
        answers[entries[i].index] = { result = result, err = qerr }
      end
    end
    return answers
  end
end

return M
