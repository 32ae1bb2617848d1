-- The reference (README, "Reference"): `make docs` runs LDoc (config.ld)
-- into a temporary directory here. It must print no warning, and every
-- public name must be in it: the functions and fields the modules really
-- export (read from the loaded modules, so a new one without a doc comment
-- fails), every option la.new, client:query and each credential constructor
-- accept (read from their sources), and the fields of results and errors.
local helper = require "helper"

local function have(command)
  local ok = helper.run("command -v " .. command .. " >/dev/null")
  return ok
end

-- Names that are exported but internal, each with the reason it is not in
-- the reference (loganalytics.errors: only the objects and is_error are public).
local INTERNAL = {
  ["loganalytics.errors.new"] = "made by the client, the credentials and loganalytics.nginx",
  ["loganalytics.errors.from_service"] = "the client's reading of a service error body",
  ["loganalytics.errors.from_http"] = "the client's reading of a non-2xx response",
}

-- The functions (and, with fields = true, other values) a module table
-- exports, as "module.name"; spec/helper.lua's own marks (_recorded) and
-- metamethods are not the module's.
local function exported(prefix, t, fields)
  local names = {}
  for k, v in pairs(t) do
    if type(k) == "string" and (k == "_VERSION" or not k:find("^_")) and (fields or type(v) == "function") then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  local out = {}
  for _, k in ipairs(names) do
    if not INTERNAL[prefix .. "." .. k] then out[#out + 1] = k end
  end
  return out
end

-- The names of a Lua source's `local NAME = { a = true, ... }` table.
local function option_set(source, name)
  local body = assert(source:match("local " .. name .. " = (%b{})"), name .. " not found")
  local out = {}
  for key in body:gmatch("([%a_][%w_]*)%s*=%s*true") do out[#out + 1] = key end
  assert(#out > 0, name .. " is empty")
  return out
end

if not have("ldoc") then
  if os.getenv("CI") then
    -- make setup installs lua-ldoc: in CI its absence is a failure
    describe("the reference", function()
      it("is built by ldoc, which make setup installs", function()
        error("ldoc is not installed (Debian's lua-ldoc; make setup installs it)")
      end)
    end)
  else
    pending("the reference: ldoc is not installed (Debian's lua-ldoc; make setup installs it)")
  end
  return
end

describe("the reference (make docs)", function()
  local dir, output, ok
  local pages = {}

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    -- a make of its own: not the jobserver or flags of a `make test` around busted
    ok, output = helper.run("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory docs DOCS_DIR="
      .. helper.shell_quote(dir))
    for _, module in ipairs { "loganalytics", "loganalytics.credentials", "loganalytics.nginx", "loganalytics.resty",
                              "loganalytics.timespan", "loganalytics.errors", "loganalytics.clouds",
                              "loganalytics.kql" } do
      local f = io.open(dir .. "/modules/" .. module .. ".html", "rb")
      if f then
        pages[module] = f:read("*a")
        f:close()
      end
    end
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. helper.shell_quote(dir)) end
  end)

  -- The part of a page that documents `name`: from its anchor to the next one.
  local function section(module, name)
    local page = pages[module]
    assert.is_string(page, module .. ".html was not generated")
    local anchor = '<a name = "' .. name .. '"></a>'
    local start = page:find(anchor, 1, true)
    assert.is_truthy(start, ("%s is not documented in the reference of %s"):format(name, module))
    local stop = page:find('<a name = "', start + #anchor, true) or #page
    return page:sub(start, stop)
  end

  local function assert_fields(module, name, fields, what)
    local text = section(module, name)
    for _, field in ipairs(fields) do
      assert.is_truthy(text:find('<span class="parameter">' .. field .. '</span>', 1, true),
        ("%s: %s '%s' is not documented"):format(name, what, field))
    end
  end

  it("is built without a warning", function()
    assert.is_true(ok, output)
    -- the target prints one line; anything else is ldoc speaking
    assert.equals("reference written to " .. dir .. "/index.html\n", output)
    assert.is_truthy(helper.read_file(dir .. "/index.html"):find("loganalytics.credentials", 1, true))
  end)

  it("documents every function and field of the loganalytics module", function()
    local la = require "loganalytics"
    local names = exported("loganalytics", la, true)
    assert.is_true(#names >= 6, table.concat(names, " "))
    for _, name in ipairs(names) do section("loganalytics", name) end
  end)

  it("documents every client method", function()
    local la = require "loganalytics"
    local client = la.new { endpoint = "http://127.0.0.1:1", workspace = "W", api_key = "K" }
    local methods = exported("client", getmetatable(client).__index)
    client:close()
    assert.same({ "batch", "close", "export", "query", "query_many", "rows", "search" }, methods)
    for _, name in ipairs(methods) do section("loganalytics", "client:" .. name) end
  end)

  it("documents every credential constructor and the credential methods", function()
    local la = require "loganalytics"
    local constructors = exported("loganalytics.credentials", la.credentials)
    for _, name in ipairs { "client_secret", "client_certificate", "authorization_code", "refresh_token",
                            "managed_identity", "workload_identity", "environment", "azure_cli",
                            "default", "authorize_url" } do
      assert.is_truthy(la.credentials[name], name)
    end
    for _, name in ipairs(constructors) do section("loganalytics.credentials", name) end
    -- azure_cli runs nothing until a token is asked for
    local credential = la.credentials.azure_cli { command = "/nonexistent/az" }
    for _, name in ipairs(exported("credential", getmetatable(credential).__index)) do
      section("loganalytics.credentials", "credential:" .. name)
    end
  end)

  it("documents loganalytics.nginx, loganalytics.resty, loganalytics.timespan, loganalytics.errors, loganalytics.clouds and loganalytics.kql", function()
    -- loganalytics.nginx and .resty need no nginx to load: ngx is used only when they run
    for module, t in pairs {
      ["loganalytics.nginx"] = require "loganalytics.nginx",
      ["loganalytics.resty"] = require "loganalytics.resty",
      ["loganalytics.timespan"] = require "loganalytics.timespan",
      ["loganalytics.errors"] = require "loganalytics.errors",
      ["loganalytics.kql"] = require "loganalytics.kql",
    } do
      local names = exported(module, t)
      assert.is_true(#names > 0, module)
      for _, name in ipairs(names) do section(module, name) end
    end
    for _, name in ipairs(exported("loganalytics.clouds", require "loganalytics.clouds", true)) do
      section("loganalytics.clouds", name)
    end
    assert_fields("loganalytics.clouds", "public", { "endpoint", "audience", "authority_host",
                                                     "arm_endpoint", "arm_audience" }, "field")
  end)

  it("documents every option of la.new and client:query", function()
    local source = helper.read_file("lua/loganalytics.lua")
    assert_fields("loganalytics", "new", option_set(source, "CLIENT_OPTIONS"), "option")
    assert_fields("loganalytics", "client:query", option_set(source, "QUERY_OPTIONS"), "option")
    assert_fields("loganalytics.resty", "new",
                  option_set(helper.read_file("lua/loganalytics/resty.lua"), "OWN_OPTIONS"), "option")
  end)

  it("documents every option of each credential constructor", function()
    local source = helper.read_file("lua/loganalytics/credentials.lua")
    assert_fields("loganalytics.credentials", "common_options", option_set(source, "COMMON"), "option")
    local checked = 0
    -- check_options(options, "name", { required }, { optional })
    for name, required, optional in source:gmatch('check_options%(%w+, "([%w_]+)",%s*(%b{}),%s*(%b{})%)') do
      local fields = {}
      for field in (required .. optional):gmatch('"([%w_]+)"') do fields[#fields + 1] = field end
      assert_fields("loganalytics.credentials", name, fields, "option")
      checked = checked + 1
    end
    assert.is_true(checked >= 9, "constructors found in the source: " .. checked)
  end)

  it("documents the fields of a result and of an error", function()
    assert_fields("loganalytics", "result", { "status", "tables", "error", "statistics", "render",
                                              "request_id", "stopped" }, "field")
    assert_fields("loganalytics", "error", { "kind", "status", "code", "message", "details", "innererror",
                                             "correlation_id", "request_id", "retry_after", "attempts",
                                             "curl_code" }, "field")
  end)
end)
