-- Races: several Lua states loading and using the module at once, as
-- nginx's thread pool does. fuzz/threads_host.c, built with ThreadSanitizer
-- (make build-tsan: the module and the host, clang -fsanitize=thread, into
-- build/tsan/), releases 8 threads together, each with its own lua_State
-- requiring loganalytics.core (curl_global_init runs in its luaopen) and
-- querying the local server: plain and gzip bodies, the body worker, TLS.
-- Any TSan report fails. Before curl_global_init and the JSON tokenizer's
-- tables were initialized through pthread_once, TSan reported data races in
-- luaopen_loganalytics_core (its curl_ready guard) and in init_tables.
-- Pending only where clang cannot build a -fsanitize=thread program (make
-- setup installs clang and libclang-rt-14-dev); in CI that is a failure.
local helper = require "helper"

local HOST = "build/tsan/threads_host"
local THREADS = 8

-- clang 14's TSan aborts with "unexpected memory mapping" under a kernel
-- with many mmap random bits; with ASLR off (setarch -R) it runs.
local function run_tsan(args)
  local command = ("env TSAN_OPTIONS=halt_on_error=1 timeout -s KILL 60 %s %s"):format(HOST, args)
  local ok, out = helper.run(command)
  if out:find("unexpected memory mapping", 1, true) then
    ok, out = helper.run("setarch \"$(uname -m)\" -R " .. command)
  end
  return ok, out
end

local function toolchain_missing()
  local dir = os.tmpname()
  os.remove(dir)
  local ok, out = helper.run(("mkdir %s && printf 'int main(void) { return 0; }\\n' > %s/t.c && "
    .. "clang -fsanitize=thread -o %s/t %s/t.c"):format(dir, dir, dir, dir))
  os.execute("rm -rf " .. dir)
  if not ok then return "clang cannot build with -fsanitize=thread: " .. out:gsub("%s+$", "") end
end

local missing = toolchain_missing()
if missing then
  local why = "ThreadSanitizer: " .. missing .. " (make setup installs clang and libclang-rt-14-dev)"
  if os.getenv("CI") then
    describe("the ThreadSanitizer check", function()
      it("has clang with its TSan runtime, which make setup installs", function() error(why) end)
    end)
  else
    pending(why)
  end
  return
end

describe("several Lua states at once (nginx's thread pool), under ThreadSanitizer", function()
  setup(function()
    local ok, out = helper.run("make -s build-tsan BUILD=build")
    assert(ok, "make build-tsan failed:\n" .. out)
  end)

  it("the check can fail: TSan reports a race the host makes on purpose", function()
    local ok, out = run_tsan(("-n %d --race"):format(THREADS))
    assert.is_false(ok, out)
    assert.matches("WARNING: ThreadSanitizer: data race", out, 1, true)
    assert.matches("unguarded_counter", out, 1, true)
  end)

  it("load the core and query the local server with no data race", function()
    local tls = helper.get("/_test/tls")
    local ok, out = run_tsan(("-n %d --https https://127.0.0.1:%d %s %s"):format(
      THREADS, tls.good, helper.shell_quote(tls.ca_file), helper.endpoint()))
    assert.is_nil(out:find("WARNING: ThreadSanitizer", 1, true), out)
    assert.is_true(ok, out)
    -- every thread loaded the module and made its three queries
    assert.matches(("%d threads: %d loaded, %d queries"):format(THREADS, THREADS, 3 * THREADS), out, 1, true)
  end)
end)
