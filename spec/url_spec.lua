-- URLs are read as libcurl reads them (core.parse_url, src/url.c): the host
-- decided on is the one libcurl connects to, and la.new refuses what an
-- endpoint must not hold. (What reaches the network: url_guard_spec.lua.)
local helper = require "helper"
local la = require "loganalytics"
local core = require "loganalytics.core"

local function raised(fn, what)
  local ok, err = pcall(fn)
  assert(not ok, (what or "the call") .. " did not raise")
  return tostring(err)
end

describe("core.parse_url", function()
  it("gives the host libcurl connects to, not the text before '@'", function()
    for url, host in pairs {
      ["http://127.0.0.1:80@192.0.2.2:18080"] = "192.0.2.2",
      ["http://[::1]:80@192.0.2.2:18080"] = "192.0.2.2",
      ["http://[::1]@192.0.2.2"] = "192.0.2.2",
      ["http://localhost@192.0.2.2/x"] = "192.0.2.2",
      ["http://127.0.0.1;x@192.0.2.2/"] = "192.0.2.2",
      ["http://127.0.0.1%2f@192.0.2.2/"] = "192.0.2.2",
    } do
      local u = assert(core.parse_url(url))
      assert.are.equal(host, u.host, url)
      assert.is_true(u.userinfo, url)
      assert.is_false(u.loopback, url)
    end
  end)

  it("takes every spelling of 127.0.0.0/8 libcurl normalizes, localhost and [::1] for loopback", function()
    for _, url in ipairs { "http://127.0.0.1", "http://127.1", "http://0x7f.1", "http://2130706433",
                           "http://0177.0.0.1", "http://%31%32%37.0.0.1", "http://127.255.255.254:8080/x",
                           "HTTP://127.0.0.1/", "http://localhost", "http://LocalHost.:1", "http://[::1]:8080",
                           "http://[0:0:0:0:0:0:0:1]", "http://0x7f000001" } do
      local u, why = core.parse_url(url)
      assert(u, why)
      assert(u.loopback, url .. " is not loopback (host " .. u.host .. ")")
    end
  end)

  it("does not take look-alikes for loopback (IPv4-mapped ::ffff:127.x included, by choice)", function()
    for _, url in ipairs { "http://[::ffff:127.0.0.1]", "http://127.0.0.1.", "http://localhost.localdomain",
                           "http://128.0.0.1", "http://126.255.255.255", "http://[::2]", "http://[::1%25lo]",
                           "http://①②⑦.0.0.1", "http://127.0.0.1.nip.io", "http://localhost..",
                           "http://0.0.0.0", "http://[::]" } do
      local u = core.parse_url(url)
      assert(not u or not u.loopback, url .. " taken for loopback")
    end
  end)

  it("lower-cases scheme and host and gives a base URL without userinfo, query, fragment or trailing slash", function()
    local u = assert(core.parse_url("HTTPS://User:Pw@Example.COM:8443/Base//?q=1#f"))
    assert.are.same({ "https", "example.com", 8443, "https://example.com:8443/Base", true, true, true },
                    { u.scheme, u.host, u.port, u.base, u.userinfo, u.query, u.fragment })
    assert.are.equal(443, assert(core.parse_url("https://h")).port)
    assert.are.equal("https://h", assert(core.parse_url("https://h/")).base)
  end)

  it("refuses whitespace, control characters, backslashes, NUL and scheme-less URLs", function()
    for _, url in ipairs { "http://a b/", "http://a\t@b/", "http://a/\n", "http://a/\127", "http://a\\@b/",
                           "http://a\0@b/", "127.0.0.1:80@192.0.2.2", "http:127.0.0.1", "", "http://" } do
      local u, why = core.parse_url(url)
      assert(u == nil and type(why) == "string", ("%q was parsed"):format(url))
    end
  end)

  it("sees dot segments, plain or percent-encoded", function()
    for url, dots in pairs {
      ["http://h/a/../b"] = true, ["http://h/a/./b"] = true, ["http://h/.."] = true,
      ["http://h/%2e%2E/b"] = true, ["http://h/.%2e"] = true, ["http://h/%2e"] = true,
      ["http://h/a/..%2fb"] = true, ["http://h/a%5c..%5cb"] = true,
      ["http://h/..a/b"] = false, ["http://h/a../b"] = false, ["http://h/.../b"] = false,
      ["http://h/a%2fb"] = false, ["http://h/%252e%252e"] = false,
    } do
      assert.are.equal(dots, assert(core.parse_url(url)).dot_segment, url)
    end
  end)
end)

describe("la.new's URLs", function()
  local function new(options)
    local o = { workspace = "DEMO_WORKSPACE", api_key = "DEMO_KEY" }
    for k, v in pairs(options) do o[k] = v end
    return la.new(o)
  end

  it("refuses userinfo, a query, a fragment, whitespace and schemes other than http(s), without quoting the URL", function()
    for _, name in ipairs { "endpoint", "arm_endpoint" } do
      for _, url in ipairs { "http://127.0.0.1:80@192.0.2.2:18080", "https://user:SECRET_PW@example.com",
                             "https://example.com?x=1", "https://example.com/#x", "https://example.com/ x",
                             "https://exa\tmple.com", "https://example.com\\x", "ftp://example.com",
                             "file:///etc/passwd", "javascript:alert(1)", "example.com", "HTTPS://[::1%25eth0]",
                             "https://example.com/a/../b" } do
        local message = raised(function() new { [name] = url, allow_http = true } end, name .. " " .. url)
        assert(message:find(name, 1, true), message)
        assert(not message:find("SECRET_PW", 1, true), message)
      end
    end
  end)

  it("keeps the normalized base URL: tostring shows no userinfo and no trailing slash", function()
    local client = new { endpoint = "HTTP://LocalHost:8080/Base/" }
    assert.are.equal("http://localhost:8080/Base", client.endpoint)
    assert.are.equal("loganalytics.client (http://localhost:8080/Base, workspace DEMO_WORKSPACE)", tostring(client))
  end)

  it("refuses a proxy that is not loopback for a plain-http endpoint carrying a secret", function()
    local local_http = helper.endpoint()
    for _, proxy in ipairs { "http://192.0.2.2:3128", "192.0.2.2:3128", "HTTP://proxy.example:3128",
                             "socks5h://192.0.2.2:1080", "https://proxy.example:443" } do
      local message = raised(function() new { endpoint = local_http, proxy = proxy } end, proxy)
      assert(message:find("proxy", 1, true), message)
      -- fine with allow_http, for an https endpoint (CONNECT), and with no secret to carry
      assert(pcall(new, { endpoint = local_http, proxy = proxy, allow_http = true }))
      assert(pcall(new, { endpoint = "https://api.example", proxy = proxy }))
      assert(pcall(la.new, { endpoint = local_http, workspace = "W", proxy = proxy }))
    end
    for _, proxy in ipairs { "http://127.0.0.1:3128", "localhost:3128", "socks5://[::1]:1080" } do
      assert(pcall(new, { endpoint = local_http, proxy = proxy }))
    end
    for _, proxy in ipairs { "ftp://127.0.0.1", "http://127.0.0.1 :3128", "http://a\\b" } do
      raised(function() new { endpoint = local_http, proxy = proxy } end, proxy)
    end
  end)
end)
