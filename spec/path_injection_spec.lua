-- Identifiers that reach a URL path (workspace, resource id, Resource
-- Manager fields, tenant) cannot leave their segment: dot segments and
-- separators are refused, every segment is percent-encoded, and the C
-- core itself refuses a dot segment in any request path.
local helper = require "helper"
local la = require "loganalytics"
local core = require "loganalytics.core"

-- The message `fn` raises (fails when it does not raise).
local function raised(fn, what)
  local ok, err = pcall(fn)
  assert(not ok, (what or "the call") .. " did not raise")
  return tostring(err)
end

-- Paths of every query request the local server has seen since the last reset.
local function paths()
  local out = {}
  for _, r in ipairs(helper.get("/_test/requests")) do out[#out + 1] = r.path end
  return out
end

local function token_paths()
  local out = {}
  for _, r in ipairs(helper.identity().requests) do out[#out + 1] = r.path end
  return out
end

describe("path injection", function()
  before_each(function() helper.reset() end)

  describe("workspace", function()
    local bad = { "..", ".", "../OTHER", "a/b", "a\\b", "%2e%2e", "a b", "a?b", "a#b", "ws\0" }

    it("refuses a workspace that is not a GUID or a name of [A-Za-z0-9_.-], in la.new", function()
      for _, ws in ipairs(bad) do
        local message = raised(function() helper.client { workspace = ws } end, ("workspace %q"):format(ws))
        assert(message:find("workspace", 1, true), message)
      end
      assert.are.same({}, paths())
    end)

    it("refuses it in a query, and in the workspaces list", function()
      local client = helper.client()
      for _, ws in ipairs(bad) do
        raised(function() client:query("Heartbeat", { workspace = ws }) end, ("query workspace %q"):format(ws))
        raised(function() client:query("Heartbeat", { workspaces = { "DEMO_WORKSPACE", ws } }) end,
          ("workspaces entry %q"):format(ws))
      end
      assert.are.same({}, paths())
    end)

    it("takes GUIDs and names with dots, dashes and underscores", function()
      local client = helper.client()
      for _, ws in ipairs { "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "my.work_space-1", "..a", "a.." } do
        local _, err = client:query("Heartbeat | take 1", { workspace = ws })
        assert(err and err.code == "WorkspaceNotFoundError", tostring(err))
      end
      assert.are.same({ "/v1/workspaces/0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0/query",
                        "/v1/workspaces/my.work_space-1/query", "/v1/workspaces/..a/query",
                        "/v1/workspaces/a../query" }, paths())
    end)
  end)

  describe("resource", function()
    it("refuses a dot segment, an empty segment or a backslash anywhere in a resource id", function()
      local client = helper.client()
      for _, resource in ipairs {
        "/subscriptions/../../v1/workspaces/OTHER",
        "/subscriptions/s/resourceGroups/./providers/p",
        "/subscriptions/s/resourceGroups/g/..",
        "/subscriptions//resourceGroups/g",
        "/subscriptions/s/",
        "/",
        "/subscriptions/s\\..\\x",
      } do
        local message = raised(function() client:query("Heartbeat", { resource = resource }) end, resource)
        assert(message:find("resource", 1, true), message)
      end
      assert.are.same({}, paths())
    end)

    it("percent-encodes every segment: what arrives is what was given, encoded", function()
      local client = helper.client()
      local result, err = client:query("Heartbeat | take 1", {
        resource = "/subscriptions/sub 1/resourceGroups/rg(1)/providers/Microsoft.Compute/virtualMachines/vm%2e%2e;x" })
      assert(result, tostring(err))
      assert.are.same({ "/v1/subscriptions/sub%201/resourceGroups/rg%281%29/providers/Microsoft.Compute/"
                        .. "virtualMachines/vm%252e%252e%3Bx/query" }, paths())
    end)
  end)

  describe("Resource Manager workspace", function()
    local function arm_client(ws)
      return la.new { endpoint = helper.endpoint(), arm_endpoint = helper.endpoint(), workspace = ws,
                      credential = la.credentials.client_secret { tenant = "TEST_TENANT",
                        client_id = "TEST_CLIENT", client_secret = "TEST_SECRET",
                        authority_host = helper.endpoint() }, max_retries = 0 }
    end

    it("refuses subscription, resource_group or name with '/', '\\', or that is '.' or '..'", function()
      local good = { subscription = "sub-1", resource_group = "rg-1", name = "demo-workspace" }
      for _, field in ipairs { "subscription", "resource_group", "name" } do
        for _, value in ipairs { "..", ".", "a/b", "../..", "a\\b", "" } do
          local ws = {}
          for k, v in pairs(good) do ws[k] = v end
          ws[field] = value
          local message = raised(function() arm_client(ws) end, ("%s = %q"):format(field, value))
          assert(message:find("workspace." .. field, 1, true), message)
        end
      end
    end)

    it("percent-encodes each field", function()
      local client = arm_client { subscription = "sub 1", resource_group = "rg(1)%2e", name = "demo-workspace" }
      local result, err = client:query("Heartbeat | take 1")
      assert(result, tostring(err))
      local lookup = helper.get("/_test/requests")
      lookup = lookup[#lookup - 1]  -- the workspace lookup, then the query
      assert.are.equal("/subscriptions/sub%201/resourceGroups/rg%281%29%252e/providers/"
        .. "Microsoft.OperationalInsights/workspaces/demo-workspace?api-version=2022-10-01", lookup.path)
    end)
  end)

  describe("tenant", function()
    local bad = { "..", ".", "../TEST_TENANT", "a/b", "TEST_TENANT/..", "a\\b", "a..b", ".a", "a.",
                  "a b", "a?b", "a#b", "%2e%2e" }

    it("refuses a tenant that is not a GUID or a domain name, in every constructor", function()
      for _, tenant in ipairs(bad) do
        for _, make in ipairs {
          function() return la.credentials.client_secret { tenant = tenant, client_id = "C", client_secret = "S" } end,
          function() return la.credentials.client_certificate { tenant = tenant, client_id = "C",
                                                                certificate = helper.certificate_path() } end,
          function() return la.credentials.refresh_token { tenant = tenant, client_id = "C", refresh_token = "R" } end,
          function() return la.credentials.authorization_code { tenant = tenant, client_id = "C", code = "X",
                                                                redirect_uri = "http://localhost:8400/callback" } end,
          function() return la.credentials.workload_identity { tenant = tenant, client_id = "C", token_file = "/dev/null" } end,
          function() return la.credentials.azure_cli { tenant = tenant } end,
          function() return la.authorize_url { tenant = tenant, client_id = "C", redirect_uri = "http://localhost/" } end,
        } do
          local message = raised(make, ("tenant %q"):format(tenant))
          assert(message:find("tenant", 1, true), message)
        end
      end
      assert.are.same({}, token_paths())
    end)

    it("takes GUIDs, domain names and the well-known tenants", function()
      for _, tenant in ipairs { "72f988bf-86f1-41af-91ab-2d7cd011db47", "contoso.onmicrosoft.com",
                                "common", "organizations", "consumers", "TEST_TENANT" } do
        local ok, err = pcall(la.credentials.client_secret, { tenant = tenant, client_id = "C", client_secret = "S" })
        assert(ok, tostring(err))
      end
    end)

    it("is refused by the C core itself (core.credential raises, naming it)", function()
      for _, tenant in ipairs(bad) do
        local message = raised(function()
          return core.credential("client_secret", { tenant = tenant, client_id = "TEST_CLIENT",
            client_secret = "TEST_SECRET", authority_host = helper.endpoint() })
        end, ("core tenant %q"):format(tenant))
        assert(message:find("tenant", 1, true), message)
      end
      assert.are.same({}, token_paths())
    end)

    it("the C core refuses an authority host with userinfo, a query, a fragment, a zone id or a dot segment", function()
      for _, host in ipairs { "http://127.0.0.1:80@192.0.2.2:18080", "https://login.microsoftonline.com?x=1",
                              "https://login.microsoftonline.com#x", "https://h/a/../b", "ftp://h", "h",
                              "http://192.0.2.2", "https://[fe80::1%25eth0]" } do
        local message = raised(function()
          return core.credential("client_secret", { tenant = "TEST_TENANT", client_id = "TEST_CLIENT",
            client_secret = "TEST_SECRET", authority_host = host })
        end, ("core authority_host %q"):format(host))
        assert(message:find("authority_host", 1, true), message)
      end
    end)
  end)

  describe("the C core", function()
    it("refuses a request path with a dot segment, plain or percent-encoded, sending nothing", function()
      local http = core.new()
      for _, path in ipairs { "/v1/workspaces/../query", "/v1/workspaces/./DEMO_WORKSPACE/query",
                              "/v1/workspaces/%2e%2e/query", "/v1/workspaces/%2E./query",
                              "/v1/workspaces/.%2e/query", "/v1/workspaces/%2e/DEMO_WORKSPACE/query",
                              "/v1/x/..", "/v1/x/%2E" } do
        local response = http:perform { url = helper.endpoint() .. path, body = "{}",
                                        headers = { "X-Api-Key: DEMO_KEY", "Content-Type: application/json" } }
        assert(response.transport and response.transport.kind == "protocol", path .. ": " .. tostring(response.status))
        assert(response.transport.message:find("dot segment", 1, true), response.transport.message)
      end
      http:close()
      assert.are.same({}, paths())
    end)
  end)
end)
