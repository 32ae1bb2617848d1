-- loganalytics.core is reachable from Lua (require "loganalytics.core"):
-- every function and method checks its own arguments and raises a clear
-- error, never crashes, whatever the Lua layer would have checked; numbers
-- out of an integer's range are never cast (undefined behaviour, caught by
-- the ASan+UBSan build's float-cast-overflow).
local helper = require "helper"
local core = require "loganalytics.core"

local closed = "http://127.0.0.1:" .. helper.closed_port() .. "/"

local function client() return core.new() end
local function cred()
  return core.credential("client_secret", { tenant = "t", client_id = "c", client_secret = "s",
                                            authority_host = closed })
end

-- { what, function, pattern the error message must match }
local CALLS = {
  { "query_body()", function() core.query_body() end, "bad argument #1" },
  { "query_body({})", function() core.query_body({}) end, "bad argument #1" },
  { "query_body(q, {})", function() core.query_body("q", {}) end, "bad argument #2" },
  { "query_body(q, nil, 1)", function() core.query_body("q", nil, 1) end, "bad argument #3" },
  { "query_body(q, nil, {1})", function() core.query_body("q", nil, { {} }) end, "bad argument #3" },
  { "decode_json()", function() core.decode_json() end, "bad argument #1" },
  { "decode_json({})", function() core.decode_json({}) end, "bad argument #1" },
  { "credential()", function() core.credential() end, "bad argument #1" },
  { "credential('nope', {})", function() core.credential("nope", {}) end, "bad argument #1" },
  { "credential(kind)", function() core.credential("client_secret") end, "bad argument #2" },
  { "credential(client_secret, {})", function() core.credential("client_secret", {}) end, "tenant" },
  { "credential(client_secret) without client_id",
    function() core.credential("client_secret", { tenant = "t" }) end, "client_id" },
  { "credential(client_secret) without secret",
    function() core.credential("client_secret", { tenant = "t", client_id = "c" }) end, "client_secret" },
  { "credential(client_certificate) without certificate",
    function() core.credential("client_certificate", { tenant = "t", client_id = "c" }) end, "certificate" },
  { "credential(authorization_code) without code",
    function() core.credential("authorization_code", { tenant = "t", client_id = "c" }) end, "code" },
  { "credential(refresh_token) without refresh_token",
    function() core.credential("refresh_token", { tenant = "t", client_id = "c" }) end, "refresh_token" },
  { "credential(workload_identity) without token_file",
    function() core.credential("workload_identity", { tenant = "t", client_id = "c" }) end, "token_file" },
  { "credential with a number tenant",
    function() core.credential("client_secret", { tenant = 1, client_id = "c", client_secret = "s" }) end,
    "tenant" },
  { "credential with a string timeout",
    function() core.credential("managed_identity", { timeout = "x" }) end, "timeout" },
  { "get_token()", function() cred():get_token() end, "bad argument #1" },
  { "get_token(scope)", function() cred():get_token("s") end, "bad argument #2" },
  { "get_token(scope, 'x')", function() cred():get_token("s", "x") end, "bad argument #2" },
  { "get_token(scope, 1e300)", function() cred():get_token("s", 1e300) end, "bad argument #2" },
  { "get_token on a client", function() cred().get_token(client(), "s", 0) end, "bad argument #1" },
  { "invalidate()", function() cred():invalidate() end, "bad argument #1" },
  { "credential close(1)", function() cred().close(1) end, "bad argument #1" },
  { "sleep()", function() core.sleep() end, "bad argument #1" },
  { "sleep('x')", function() core.sleep("x") end, "bad argument #1" },
  { "sleep(NaN)", function() core.sleep(0 / 0) end, "bad argument #1" },
  { "sleep(1e300)", function() core.sleep(1e300) end, "bad argument #1" },
  { "sleep(math.huge)", function() core.sleep(math.huge) end, "bad argument #1" },
  { "parse_http_date()", function() core.parse_http_date() end, "bad argument #1" },
  { "perform()", function() client():perform() end, "bad argument #1" },
  { "perform(1)", function() client():perform(1) end, "bad argument #1" },
  { "perform{}", function() client():perform {} end, "url" },
  { "perform{url=1}", function() client():perform { url = 1 } end, "url" },
  { "perform with headers = 1", function() client():perform { url = closed, headers = 1 } end, "headers" },
  { "perform with headers = {1}", function() client():perform { url = closed, headers = { {} } } end, "headers" },
  { "perform with timeout = 'x'", function() client():perform { url = closed, timeout = "x" } end, "timeout" },
  { "perform with on_row = 1", function() client():perform { url = closed, on_row = 1 } end, "on_row" },
  { "perform on a credential", function() client().perform(cred(), { url = closed }) end, "bad argument #1" },
  { "start()", function() client():start() end, "bad argument #1" },
  { "start{}", function() client():start {} end, "url" },
  { "step() with nothing started", function() client():step() end, "no transfer" },
  { "step('x')", function() client():step("x") end, "bad argument #1" },
  { "step(1e300)", function() local c = client(); c:start { url = closed }; c:step(1e300) end, "bad argument #1" },
  { "cancel(1)", function() client().cancel(1) end, "bad argument #1" },
  { "close(1)", function() client().close(1) end, "bad argument #1" },
  { "perform on a closed client", function() local c = client(); c:close(); c:perform { url = closed } end, "closed" },
  { "start twice", function() local c = client(); c:start { url = closed }; c:start { url = closed } end, "busy" },
}

describe("loganalytics.core's arguments", function()
  for _, call in ipairs(CALLS) do
    it("raise a clear error: " .. call[1], function()
      local ok, err = pcall(call[2])
      assert.is_false(ok, "no error")
      assert.is_string(err)
      assert.truthy(err:find(call[3], 1, true), err)
    end)
  end

  it("never crash: get_token on a credential without tenant and client id (a new process)", function()
    local ok, output = helper.run_lua([[
local core = require "loganalytics.core"
local made, cred = pcall(core.credential, "client_secret", {})
if made then print(cred:get_token("https://api.loganalytics.io/.default", os.time())) end
print("alive", made)]])
    assert.is_true(ok, output)
    assert.matches("alive\tfalse", output)
  end)
end)

describe("loganalytics.core's numbers", function()
  it("takes a timeout of 1e300 s as no limit, without casting it", function()
    local response = core.new():perform { url = closed, timeout = 1e300, connect_timeout = 1e300 }
    assert.equals("network", response.transport.kind)
  end)

  it("decodes JSON numbers beyond any integer without casting them", function()
    local v = assert(core.decode_json('{"x":1e300,"y":-1e300,"z":[1e19, 4]}'))
    assert.equals(1e300, v.x)
    assert.equals(-1e300, v.y)
    assert.equals(1e19, v.z[1])
    assert.equals(4, v.z[2])
  end)

  it("sleeps 0 for 0 and negative seconds", function()
    local t0 = core.now()
    core.sleep(0)
    core.sleep(-5)
    assert.is_true(core.now() - t0 < 0.05)
  end)
end)
