-- environment(), azure_cli(), default() and the last_24h example, each in a
-- fresh lua5.4 with an environment of our choosing (Lua cannot setenv).
local helper = require "helper"

-- A fake `az` in a folder of its own: prints what the real one prints
-- (body on stdout, stderr_text on stderr).
local function fake_az(body, exit_code, stderr_text)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local f = assert(io.open(dir .. "/az", "w"))
  f:write("#!/bin/sh\n")
  f:write("echo \"$@\" > " .. dir .. "/args\n")
  if stderr_text then f:write("cat >&2 <<'TEXT'\n" .. stderr_text .. "\nTEXT\n") end
  f:write("cat <<'JSON'\n" .. body .. "\nJSON\n")
  f:write("exit " .. (exit_code or 0) .. "\n")
  f:close()
  assert(os.execute("chmod +x " .. dir .. "/az"))
  return dir
end

local GET_TOKEN = [[
local la = require "loganalytics"
local credential = la.credentials[arg and arg[1] or "%s"](%s)
local token, err = credential:get_token()
if token then print("TOKEN " .. token) else print("ERROR " .. tostring(err)) end
]]

local function get_token(kind, options, env)
  return helper.run_lua(GET_TOKEN:format(kind, options or ""), env)
end

before_each(function()
  helper.configure_identity('{"reset": true}')
end)

describe("environment()", function()
  it("uses AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET", function()
    local ok, out = get_token("environment", nil, {
      AZURE_TENANT_ID = "TEST_TENANT", AZURE_CLIENT_ID = "TEST_CLIENT",
      AZURE_CLIENT_SECRET = "TEST_SECRET", AZURE_AUTHORITY_HOST = helper.endpoint(),
    })
    assert.is_true(ok, out)
    assert.matches("^TOKEN at%-", out)
  end)

  it("uses AZURE_CLIENT_CERTIFICATE_PATH", function()
    local ok, out = get_token("environment", nil, {
      AZURE_TENANT_ID = "TEST_TENANT", AZURE_CLIENT_ID = "TEST_CERT_CLIENT",
      AZURE_CLIENT_CERTIFICATE_PATH = helper.certificate_path(), AZURE_AUTHORITY_HOST = helper.endpoint(),
    })
    assert.is_true(ok, out)
    assert.matches("^TOKEN at%-", out)
  end)

  it("says which variables are missing", function()
    local ok, out = get_token("environment")
    assert.is_true(ok, out)
    assert.matches("^ERROR .*AZURE_TENANT_ID", out)
  end)
end)

describe("azure_cli()", function()
  it("runs az account get-access-token for the resource and reads its answer", function()
    local dir = fake_az(('{"accessToken": "CLI_TOKEN_1", "expiresOn": "2099-01-01 00:00:00.000000", "expires_on": %d, "tokenType": "Bearer"}')
      :format(os.time() + 3600))
    local ok, out = get_token("azure_cli", nil, { PATH = dir .. ":/usr/bin:/bin" })
    assert.is_true(ok, out)
    assert.equals("TOKEN CLI_TOKEN_1\n", out)
    local args = helper.read_file(dir .. "/args")
    assert.matches("account get-access-token --output json --resource https://api.loganalytics.io", args, 1, true)
  end)

  it("reports the CLI's own message when it fails (its first line on stderr)", function()
    local dir = fake_az("", 1, "WARNING: a warning first\nERROR: Please run 'az login' to setup account.\nsecond line")
    local ok, out = get_token("azure_cli", nil, { PATH = dir .. ":/usr/bin:/bin" })
    assert.is_true(ok, out)
    assert.matches("^ERROR .*az login", out)
    assert.not_matches("second line", out, 1, true)
    assert.not_matches("WARNING", out, 1, true)
  end)

  it("reads the token on stdout while the CLI warns on stderr", function()
    local dir = fake_az(('{"accessToken": "CLI_TOKEN_4", "expires_on": %d}'):format(os.time() + 3600), 0,
      "WARNING: The command requires the extension account. It will be installed first.")
    local ok, out = get_token("azure_cli", nil, { PATH = dir .. ":/usr/bin:/bin" })
    assert.is_true(ok, out)
    assert.equals("TOKEN CLI_TOKEN_4\n", out)
  end)

  it("never puts the CLI's stdout in an error: a malformed answer holding a token", function()
    local jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJMRUFLWSJ9.c2lnbmF0dXJlX0xFQUtZ"
    for _, body in ipairs {
      '{"accessToken": "' .. jwt .. '", "expiresOn": ',           -- cut short
      '{"accessToken": "' .. jwt .. '" "expires_on": 1}',         -- not JSON
      '{"access_token": "' .. jwt .. '"}',                         -- no accessToken
    } do
      for _, code in ipairs { 0, 1 } do
        local dir = fake_az(body, code, code == 1 and "ERROR: something broke" or nil)
        local ok, out = get_token("azure_cli", nil, { PATH = dir .. ":/usr/bin:/bin" })
        assert.is_true(ok, out)
        assert.matches("^ERROR ", out)
        assert.not_matches("eyJ", out, 1, true)
        assert.not_matches("LEAKY", out, 1, true)
        assert.not_matches("accessToken", out, 1, true)
      end
    end
  end)
end)

describe("default()", function()
  it("with nothing configured fails quickly, naming every source it tried, touching no other host", function()
    local trace = os.tmpname()
    local ok, out, seconds = helper.run_lua(GET_TOKEN:format("default", ""),
      { PATH = "/usr/bin:/bin" }, "strace -f -qq -e trace=connect -o " .. trace)
    assert.is_true(ok, out)
    assert.matches("^ERROR ", out)
    for _, source in ipairs { "environment", "workload_identity", "managed_identity", "azure_cli" } do
      assert.matches(source, out, 1, true)
    end
    assert.is_true(seconds < 2, "took " .. seconds .. " s")
    -- every connect() the process made (if any) went to loopback or a local socket
    for line in io.lines(trace) do
      if line:find("AF_INET", 1, true) then
        assert.matches("127%.0%.0%.1", line)
      end
    end
    os.remove(trace)
  end)

  it("takes the first source that gives a token (here the Azure CLI)", function()
    local dir = fake_az(('{"accessToken": "CLI_TOKEN_2", "expires_on": %d}'):format(os.time() + 3600))
    local ok, out = get_token("default", "", { PATH = dir .. ":/usr/bin:/bin" })
    assert.is_true(ok, out)
    assert.equals("TOKEN CLI_TOKEN_2\n", out)
  end)

  it("takes the environment first when it is configured", function()
    local dir = fake_az('{"accessToken": "CLI_TOKEN_3"}')
    local ok, out = get_token("default", "", {
      PATH = dir .. ":/usr/bin:/bin", AZURE_TENANT_ID = "TEST_TENANT", AZURE_CLIENT_ID = "TEST_CLIENT",
      AZURE_CLIENT_SECRET = "TEST_SECRET", AZURE_AUTHORITY_HOST = helper.endpoint(),
    })
    assert.is_true(ok, out)
    assert.matches("^TOKEN at%-", out)
  end)

  it("uses managed identity when an IMDS address is configured", function()
    local ok, out = get_token("default", "", {
      PATH = "/usr/bin:/bin", AZURE_POD_IDENTITY_AUTHORITY_HOST = helper.endpoint(),
    })
    assert.is_true(ok, out)
    assert.matches("^TOKEN at%-", out)
  end)
end)
