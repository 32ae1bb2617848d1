-- The plain-http guard against hostile URLs, in a network namespace of its
-- own (spec/scripts/netns_guard.sh): a capture server listens on 192.0.2.2,
-- a second address of that namespace's lo, and records every byte it gets;
-- the project's local server listens on 127.0.0.1 there. Endpoints,
-- Resource Manager endpoints, authority hosts and proxies (option and
-- environment) that lead to the capture server are given with an API key,
-- a token or a client secret: each must be refused with a clear message,
-- and no secret may arrive.
local helper = require "helper"

local function namespace_possible()
  return helper.run("unshare -n sh -c 'ip link set lo up && ip addr add 192.0.2.2/32 dev lo'")
end

describe("the plain-http guard, in a network namespace", function()
  local results, capture, skipped, hosts_file

  setup(function()
    local ok, why = namespace_possible()
    if not ok then
      skipped = "unshare -n is not possible here (" .. why:gsub("%s+$", "") .. ")"
      return
    end
    local out = os.tmpname()
    os.remove(out)
    assert(os.execute("mkdir -p " .. out))
    -- with a mount namespace as well when possible (a hosts file of its own)
    local with_mount = helper.run("unshare -n -m true")
    local ran, output = helper.run((with_mount and "unshare -n -m env LA_GUARD_MOUNT=1" or "unshare -n")
      .. " sh spec/scripts/netns_guard.sh " .. out)
    hosts_file = with_mount
    assert(ran, "netns_guard.sh failed: " .. output)
    local text = helper.read_file(out .. "/results")
    capture = helper.read_file(out .. "/capture.log")
    os.execute("rm -rf " .. out)
    results = {}
    for line in text:gmatch("[^\n]+") do
      local group, name, expect, outcome, kind, message =
        line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      assert(group, "unexpected driver output: " .. line)
      results[#results + 1] = { group = group, name = name, expect = expect, outcome = outcome,
                                kind = kind, message = message }
    end
  end)

  local function skip_if_impossible()
    if skipped then
      pending(skipped)
      return true
    end
  end

  it("ran every case: at least 20 hostile URLs, as endpoint, arm_endpoint, authority_host and proxy", function()
    if skip_if_impossible() then return end
    local refused, roles = 0, {}
    for _, r in ipairs(results) do
      if r.expect == "refused" then
        refused = refused + 1
        roles[r.name:match("^%a+")] = true
      end
    end
    assert(refused >= 4 * 20, "only " .. refused .. " refused cases ran")
    for _, role in ipairs { "endpoint", "arm", "authority", "proxy", "key", "token" } do
      assert(roles[role], "no case used the URL as " .. role)
    end
  end)

  it("the capture server works: a key sent with allow_http arrives", function()
    if skip_if_impossible() then return end
    assert(capture:find("CONTROL_KEY", 1, true), "the control request never reached the capture server")
  end)

  it("no secret ever reaches the capture server", function()
    if skip_if_impossible() then return end
    local leaked = {}
    for secret in capture:gmatch("SECRET_[%w_]+") do leaked[#leaked + 1] = secret end
    assert(#leaked == 0, "secrets reached 192.0.2.2: " .. table.concat(leaked, ", "))
    -- every connection but the control's: no credential of any kind
    for record in (capture .. "--- "):gmatch("(connection from .-)%-%-%- ") do
      if not record:find("CONTROL_KEY", 1, true) then
        for _, header in ipairs { "X%-Api%-Key", "Authorization", "client_secret", "api_key=" } do
          assert(not record:find(header), header .. " reached 192.0.2.2:\n" .. record)
        end
      end
    end
  end)

  it("refuses each hostile URL with a clear raise or a clear error", function()
    if skip_if_impossible() then return end
    local bad = {}
    for _, r in ipairs(results) do
      if r.expect == "refused" then
        local clear = (r.outcome == "raised" and r.message:find("^loganalytics: "))
          or (r.outcome == "error" and r.kind == "protocol" and r.message:find("refused", 1, true))
        if not clear then
          bad[#bad + 1] = ("%s/%s: %s %s %s"):format(r.group, r.name, r.outcome, r.kind, r.message)
        end
      end
    end
    assert(#bad == 0, "not refused clearly:\n" .. table.concat(bad, "\n"))
  end)

  it("checks the address reached: 'localhost.' that resolves to 192.0.2.2 gets no secret", function()
    if skip_if_impossible() then return end
    if not hosts_file then
      pending("unshare -m is not possible here: no hosts file of our own")
      return
    end
    assert(capture:find("CONTROL_KEY_HOSTS", 1, true), "the hosts file did not send localhost. to 192.0.2.2")
    local seen = 0
    for _, r in ipairs(results) do
      if r.group == "hosts_file" and r.expect == "refused" then
        seen = seen + 1
        assert(r.outcome == "error" and r.kind == "protocol" and r.message:find("reached 192.0.2.2", 1, true),
               ("%s: %s %s %s"):format(r.name, r.outcome, r.kind, r.message))
      end
    end
    assert(seen == 3, "hosts_file cases: " .. seen)
  end)

  it("lets what is safe through: loopback direct, HTTP_PROXY and no_proxy as libcurl reads them, CONNECT for https", function()
    if skip_if_impossible() then return end
    local seen = 0
    for _, r in ipairs(results) do
      if r.expect == "allowed" then
        seen = seen + 1
        assert(r.outcome == "ok", ("%s/%s: %s %s"):format(r.group, r.name, r.outcome, r.message))
      elseif r.expect == "tunnel" then
        seen = seen + 1
        -- refused by the proxy (the capture server answers 500), not by the guard
        assert(r.outcome == "error" and r.kind == "network", ("%s/%s: %s %s %s"):format(
          r.group, r.name, r.outcome, r.kind, r.message))
      end
    end
    assert(seen >= 7, "too few allowed cases ran: " .. seen)
    assert(capture:find("CONNECT 127.0.0.1:9 HTTP/1.1", 1, true),
           "the https request did not tunnel through the proxy")
  end)
end)
