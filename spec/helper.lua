-- Shared by the specs: starts the project's local server once per busted
-- run (a real HTTP server on 127.0.0.1) and reads what it saw through its
-- /_test endpoints.
local core = require "loganalytics.core"

local helper = {}

--- The build directory the specs' subprocesses and tools use: build/, or
-- LA_BUILD_DIR (make test-no-isal runs the suite against build/no-isal).
helper.build_dir = os.getenv("LA_BUILD_DIR") or "build"

-- Lua 5.1, 5.2 and LuaJIT have no integer subtype: the specs' math.type and
-- math.tointeger get their meaning there (an integral number within 2^53
-- is what the module gives as an "integer"; longs beyond are strings).
helper.has_integers = math.type ~= nil and math.type(1.0) == "float"
if not helper.has_integers then
  function math.type(x)
    if type(x) ~= "number" then return nil end
    if x == math.floor(x) and x >= -2^53 and x <= 2^53 then return "integer" end
    return "float"
  end
  function math.tointeger(x)
    if type(x) == "number" and x == math.floor(x) then return x end
    return nil
  end
  math.maxinteger = "9223372036854775807"
  math.mininteger = "-9223372036854775808"
end

local port

-- The pid of this Lua process, so the server can exit when it does, and
-- its start time, which with the pid names this run uniquely.
local function own_pid()
  local f = io.open("/proc/self/stat", "r")
  local stat = f and f:read("*a") or ""
  if f then f:close() end
  local pid = tonumber(stat:match("^(%d+)"))
  -- field 22, counted after the ")" that ends the command name
  local after = stat:match("%)%s+(.*)$") or ""
  local fields = {}
  for field in after:gmatch("%S+") do fields[#fields + 1] = field end
  return pid, fields[20] or "0"
end

local certificate_dir

-- busted reloads this module for every spec file (each file is insulated),
-- so what must outlive a file (the server, the certificate, the messages)
-- is found through files named after this process.
local state_base = ("/tmp/loganalytics-spec-%d-%s"):format(own_pid())
helper.messages_file = state_base .. ".messages"

-- A throwaway certificate and key for the certificate flow: the server
-- verifies client assertions against it.
local function make_certificate()
  local d = state_base .. ".certs"
  certificate_dir = d
  assert(os.execute(("mkdir -p %s && openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=loganalytics-test -days 2 "
    .. "-keyout %s/key.pem -out %s/cert.pem 2>/dev/null && cat %s/cert.pem %s/key.pem > %s/both.pem && "
    .. "openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:TEST_CERT_PASSWORD -in %s/key.pem -out %s/key-enc.pem && "
    .. "cat %s/cert.pem %s/key-enc.pem > %s/both-enc.pem"):format(d, d, d, d, d, d, d, d, d, d, d)))
end

-- Runs `command` in the background with its standard output to a file and
-- waits for the port it prints on its first line (servers given --port 0);
-- nil when none came within 5 s. Never waits on the process itself.
local function background_port(command)
  local port_file = os.tmpname()
  os.execute(("%s > %s &"):format(command, port_file))
  local got
  for _ = 1, 100 do
    local f = io.open(port_file, "r")
    got = f and tonumber(f:read("*l") or "")
    if f then f:close() end
    if got then break end
    os.execute("sleep 0.05")
  end
  os.remove(port_file)
  return got
end
helper.background_port = background_port

local function start()
  if port then return end
  local state = io.open(state_base .. ".port", "r")
  if state then
    port = tonumber(state:read("*l"))
    state:close()
    certificate_dir = state_base .. ".certs"
    if port then return end
  end
  make_certificate()
  -- in the background, watching this process: it exits when we do
  port = background_port(("python3 server/la_server.py --port 0 --tls --watch-pid %d --client-cert TEST_CERT_CLIENT=%s/cert.pem")
    :format((own_pid()), certificate_dir))
  assert(port, "the local server did not start (run the specs from the repository root)")
  local f = assert(io.open(state_base .. ".port", "w"))
  f:write(port, "\n")
  f:close()
end

-- Every error object the module makes during the suite, and everything it
-- says, is appended to messages_file for secrets_spec to search.
do
  local errors = require "loganalytics.errors"
  local function strings_of(v, out, depth)
    if type(v) == "string" then
      out[#out + 1] = v
    elseif type(v) == "table" and depth < 10 then
      for k, x in pairs(v) do
        strings_of(k, out, depth + 1)
        strings_of(x, out, depth + 1)
      end
    elseif v ~= nil and type(v) ~= "table" then
      out[#out + 1] = tostring(v)
    end
  end
  local function record(list)
    local f = io.open(helper.messages_file, "a")
    if not f then return end
    for _, text in ipairs(list) do f:write(text, "\0\n") end
    f:close()
  end
  if not errors._recorded then
    local new = errors.new
    errors.new = function(fields, secrets)
      local e = new(fields, secrets)
      local out = { tostring(e) }
      strings_of(e, out, 0)
      record(out)
      return e
    end
    errors._recorded = true
  end
  helper.record_message = function(text) record { text } end

  -- every client and credential the specs make, wherever they make it:
  -- its tostring, and every line its logger is given
  local la = require "loganalytics"
  if not la._recorded then
    local new = la.new
    la.new = function(options)
      -- (a log option that is not a function is left for la.new to refuse)
      if type(options) == "table" and (options.log == nil or type(options.log) == "function") then
        local o, log = {}, options.log
        for k, v in pairs(options) do o[k] = v end
        o.log = function(level, message)
          record { level .. " " .. message }
          if log then return log(level, message) end
        end
        options = o
      end
      local client = new(options)
      record { tostring(client) }
      return client
    end
    for name, constructor in pairs(la.credentials) do
      if type(constructor) == "function" and name ~= "authorize_url" then
        la.credentials[name] = function(...)
          local credential = constructor(...)
          record { tostring(credential) }
          return credential
        end
      end
    end
    la._recorded = true
  end
end

--- Removes this run's files (the server keeps running until the run ends).
function helper.remove_state()
  os.execute(("rm -rf %s.messages %s.port %s.certs"):format(state_base, state_base, state_base))
end

--- Base URL of the local server.
function helper.endpoint()
  start()
  return "http://127.0.0.1:" .. port
end

--- A port with nothing listening on it (a refused connection).
function helper.closed_port()
  local probe = io.popen([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
  local p = tonumber(probe:read("*l"))
  probe:close()
  return p
end

--- Paths of the test certificate: both.pem (certificate and key) and
-- both-enc.pem (key encrypted with TEST_CERT_PASSWORD).
function helper.certificate_path(name)
  start()
  return certificate_dir .. "/" .. (name or "both.pem")
end

local function curl(method, path, json)
  local data = json and (" -H 'Content-Type: application/json' --data '%s'"):format(json) or ""
  local pipe = assert(io.popen(("curl -s -X %s %s%s%s"):format(method, helper.endpoint(), path, data)))
  local body = pipe:read("*a")
  pipe:close()
  return body
end

--- GET a /_test endpoint, decoded.
function helper.get(path)
  local body = curl("GET", path)
  local value, err = core.decode_json(body)
  assert(value ~= nil, "bad JSON from " .. path .. ": " .. tostring(err) .. " " .. body)
  return value
end

--- The last query request the server received: method, path, headers, body.
function helper.last_request()
  local last = helper.get("/_test/last")
  if last ~= core.null and last.body then
    last.json = core.decode_json(last.body)
  end
  return last
end

function helper.reset()
  curl("POST", "/_test/reset")
end

--- What the identity provider saw: token_requests, requests, issued.
function helper.identity()
  return helper.get("/_test/identity")
end

--- Sets the identity provider's behaviour, e.g. { expires_in = 2 } or { reset = true }.
function helper.configure_identity(json_text)
  curl("POST", "/_test/identity", json_text)
end

--- Changes the local server's test configuration (server/la_server.py's
-- docstring lists the keys), e.g. '{"row_cap":100000}'; returns the whole
-- configuration. helper.reset() restores the startup values.
function helper.configure_server(json_text)
  local value = core.decode_json(curl("POST", "/_test/config", json_text))
  assert(type(value) == "table" and value.error == nil, "the server refused the configuration " .. json_text)
  return value
end

--- Makes every access token issued so far invalid.
function helper.revoke_tokens()
  curl("POST", "/_test/revoke")
end

--- A client on the local server with the demo key, plus any options. It
-- makes one try per query (max_retries = 0) unless told otherwise: most
-- specs look at what one failure gives; retry_spec.lua looks at retries.
function helper.client(options)
  local la = require "loganalytics"
  local o = { endpoint = helper.endpoint(), workspace = "DEMO_WORKSPACE", api_key = "DEMO_KEY",
              max_retries = 0 }
  for k, v in pairs(options or {}) do o[k] = v end
  return la.new(o)  -- recorded: see the messages file above
end

--- The directory of recorded service responses (spec/fixtures/recorded).
function helper.recorded_dir()
  return os.getenv("LA_RECORDED_DIR") or "spec/fixtures/recorded"
end

--- Whether a test tool was built (CMake builds the differential checks only
-- when yajl and zlib are found). CI sets LA_REQUIRE_TEST_TOOLS=1: there a
-- missing tool fails rather than skips.
function helper.has_tool(tool)
  local f = io.open(helper.build_dir .. "/" .. tool, "rb")
  if f then f:close() return true end
  assert(os.getenv("LA_REQUIRE_TEST_TOOLS") ~= "1", helper.build_dir .. "/" .. tool .. " was not built")
  return false
end

--- Runs a standalone differential check (build/tokenizer_diff, build/gunzip_diff)
-- with `-n rounds` over every fixture, recorded response and REST example;
-- asserts it found no difference in at least `min_inputs` inputs.
function helper.assert_no_differences(tool, rounds, min_inputs)
  local pipe = io.popen(("%s/%s -n %d spec/fixtures/*.json %s/*.json spec/fixtures/wire/*.json 2>&1")
    :format(helper.build_dir, tool, rounds, helper.recorded_dir()))
  local out = pipe:read("*a")
  local ok, _, code = pipe:close()
  assert(ok == true or code == 0, out)
  local inputs, differences = out:match("(%d+) inputs, (%d+) differences")
  assert(tonumber(inputs) and tonumber(inputs) >= min_inputs, out)
  assert(differences == "0", out)
end

function helper.read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

--- The deepest innererror message of an error (the specs' own reading).
function helper.innermost_message(e)
  local found
  local inner = e.innererror
  while type(inner) == "table" do
    if type(inner.message) == "string" then found = inner.message end
    inner = inner.innererror
  end
  return found
end

--- Runs a shell command; returns whether it succeeded (its exit status, on
-- Lua 5.2+) and what it printed on stdout and stderr.
function helper.run(command)
  local pipe = assert(io.popen(command .. " 2>&1"))
  local output = pipe:read("*a")
  local ok, _, code = pipe:close()
  return ok == true or code == 0, output
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
helper.shell_quote = shell_quote

--- Runs a Lua script (text) in a new lua5.4 with only the given environment
-- (plus PATH, unless given) and the checkout's module paths.
-- Returns ok, output (stdout and stderr), seconds.
function helper.run_lua(script, env, wrapper)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write('package.path = "lua/?.lua;lua/?/init.lua;" .. package.path\n')
  f:write('package.cpath = "' .. helper.build_dir .. '/?.so;" .. package.cpath\n')
  f:write(script)
  f:close()
  local vars = { "PATH=" .. shell_quote((env and env.PATH) or os.getenv("PATH")) }
  for k, v in pairs(env or {}) do
    if k ~= "PATH" then vars[#vars + 1] = k .. "=" .. shell_quote(v) end
  end
  local function now() return tonumber(io.popen("date +%s.%N"):read("*l")) end
  local t0 = now()
  local pipe = io.popen(("env -i %s %s lua5.4 %s 2>&1"):format(table.concat(vars, " "), wrapper or "", file))
  local output = pipe:read("*a")
  local ok, _, code = pipe:close()
  local t1 = now()
  os.remove(file)
  return ok == true or code == 0, output, t1 - t0
end

--- Runs examples/openresty/ under the real nginx (LuaJIT module from
-- `make build-jit`), in a temporary prefix: its nginx.conf with this
-- checkout's paths, a free port and its own pid file, then `edit(conf)` if
-- given; `env` (e.g. "env LA_ENDPOINT=...") goes before the command. Waits
-- for /ping. Returns the port, the prefix and a function that stops nginx
-- and removes the prefix.
function helper.start_example_nginx(edit, env)
  local ok, out = helper.run("make -s build-jit")
  assert(ok, out)
  local pwd = assert(io.popen("pwd"))
  local root = pwd:read("*l")
  pwd:close()
  local prefix = os.tmpname()
  os.remove(prefix)
  assert(os.execute("mkdir -p " .. prefix .. "/logs"))
  local port = helper.closed_port()
  local pid_file = prefix .. "/nginx.pid"
  local conf = helper.read_file("examples/openresty/nginx.conf")
    :gsub("%$prefix/%.%./%.%./", root .. "/")
    :gsub("listen 127%.0%.0%.1:%d+;", "listen 127.0.0.1:" .. port .. ";")
    :gsub("content_by_lua_file ([%w_]+)%.lua;", "content_by_lua_file " .. root .. "/examples/openresty/%1.lua;")
    :gsub("pid nginx%.pid;", "pid " .. pid_file .. ";")
  if edit then conf = edit(conf) end
  -- started by root, nginx runs its workers as nobody, who cannot read a
  -- checkout in a private directory (a fresh clone under mktemp -d, /root)
  local id = assert(io.popen("id -u"))
  if id:read("*l") == "0" then conf = "user root;\n" .. conf end
  id:close()
  local f = assert(io.open(prefix .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  os.execute(("%s nginx -p %s -c %s/nginx.conf -g 'daemon off;' > %s/logs/out.log 2>&1 &")
    :format(env or "", prefix, prefix, prefix))
  for _ = 1, 100 do
    local _, status = helper.run(("curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/ping"):format(port))
    if status == "200" then break end
    os.execute("sleep 0.05")
  end
  local function stop()
    local pid_f = io.open(pid_file)
    if pid_f then
      local pid = pid_f:read("*n")
      pid_f:close()
      if pid then os.execute("kill " .. pid) end
    end
    os.execute("sleep 0.2; rm -rf " .. prefix)
  end
  return port, prefix, stop
end

--- Asserts that two lists of rows hold the same cells: the same Lua value
-- and number subtype (integer vs float), NaN equal to NaN.
function helper.assert_same_rows(want_rows, got_rows, what)
  local function same(a, b)
    if a ~= a and b ~= b then return true end
    if type(a) == "number" and type(b) == "number" and math.type(a) ~= math.type(b) then
      return false
    end
    return a == b
  end
  assert(#want_rows == #got_rows, ("%s: %d rows, expected %d"):format(what, #got_rows, #want_rows))
  for r, want in ipairs(want_rows) do
    local got = got_rows[r]
    assert(#want == #got, ("%s: width of row %d"):format(what, r))
    for j = 1, #want do
      assert(same(want[j], got[j]), ("%s: row %d cell %d: %s vs %s"):format(
        what, r, j, tostring(want[j]), tostring(got[j])))
    end
  end
end

--- Starts spec/scripts/ping_probe.py or rss_probe.py (`script`, its
-- arguments in `args`) writing its report to a new temporary file, and
-- waits until it is ready to be stopped. Returns a probe; probe:stop() sends
-- it SIGTERM and returns its report (decoded).
function helper.start_probe(script, args)
  local out = os.tmpname()
  os.remove(out)
  local p = assert(io.popen(("python3 spec/scripts/%s %s --out %s >/dev/null 2>&1 & echo $!"):format(script, args, out)))
  local pid = p:read("*l")
  p:close()
  local function report()
    local f = io.open(out)
    local value = f and core.decode_json(f:read("*a"))
    if f then f:close() end
    return value
  end
  for _ = 1, 200 do
    if report() then break end
    os.execute("sleep 0.05")
  end
  if not report() then
    os.execute("kill " .. pid .. " 2>/dev/null")
    error(script .. " did not start")
  end
  local probe = {}
  function probe.stop()
    os.execute("kill " .. pid)
    for _ = 1, 200 do
      local value = report()
      if value and not value.running then
        os.remove(out)
        return value
      end
      os.execute("sleep 0.05")
    end
    error(script .. " wrote no report")
  end
  return probe
end

function helper.hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

return helper
