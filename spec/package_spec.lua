-- The release's parts agree: loganalytics._VERSION, the release rockspec
-- and CHANGELOG.md's latest release; the rockspecs build with CMakeLists.txt
-- (one list of C sources, nothing to drift) on Unix only; LICENSE is MIT.
local helper = require "helper"
local la = require "loganalytics"

-- A rockspec's fields, read in an empty environment.
local function rockspec(path)
  local env = {}
  local chunk
  if setfenv then
    chunk = assert(loadstring(helper.read_file(path), path))
    setfenv(chunk, env)
  else
    chunk = assert(load(helper.read_file(path), path, "t", env))
  end
  chunk()
  return env
end

local function files(pattern)
  local out = {}
  local pipe = assert(io.popen("ls " .. pattern .. " 2>/dev/null"))
  for line in pipe:lines() do out[#out + 1] = line end
  pipe:close()
  return out
end

local function release_rockspecs()
  local out = {}
  for _, path in ipairs(files("rockspec/*.rockspec")) do
    if not path:find("%-scm%-") then out[#out + 1] = path end
  end
  return out
end

describe("the release", function()
  it("has one version: _VERSION, the release rockspec, CHANGELOG.md's latest release", function()
    local releases = release_rockspecs()
    assert.equals(1, #releases, "one release rockspec, the latest: " .. table.concat(releases, " "))
    local spec = rockspec(releases[1])
    assert.equals("rockspec/loganalytics-" .. spec.version .. ".rockspec", releases[1])
    local version = spec.version:match("^(.-)%-%d+$")
    assert.equals(la._VERSION, version)
    assert.equals("v" .. version, spec.source.tag)
    -- the first "## [X.Y.Z]" heading after "## [Unreleased]"
    local changelog = helper.read_file("CHANGELOG.md")
    assert.is_truthy(changelog:find("\n## %[Unreleased%]\n"), "CHANGELOG.md has an Unreleased section")
    local latest = changelog:match("\n## %[(%d+%.%d+%.%d+)%]")
    assert.equals(la._VERSION, latest)
  end)

  it("is MIT-licensed, with the copyright line, in LICENSE and in the rockspecs", function()
    local license = helper.read_file("LICENSE")
    assert.is_truthy(license:find("^MIT License\n"), license:sub(1, 40))
    assert.is_truthy(license:find("\nCopyright %(c%) 2026 The loganalytics authors\n"))
    for _, path in ipairs(files("rockspec/*.rockspec")) do
      assert.equals("MIT", rockspec(path).description.license, path)
    end
  end)
end)

describe("the rockspecs", function()
  it("build with CMakeLists.txt on Unix, and differ only in version and tag", function()
    local scm = rockspec("rockspec/loganalytics-scm-1.rockspec")
    local release = rockspec(release_rockspecs()[1])
    for _, spec in ipairs { scm, release } do
      assert.same({ "unix" }, spec.supported_platforms)
      assert.equals("cmake", spec.build.type)
      assert.is_nil(spec.build.modules)   -- no second list of sources
      assert.equals("$(LUA_INCDIR)", spec.build.variables.LUA_INCDIR)
      assert.equals("-undefined dynamic_lookup",
        spec.build.platforms.macosx.variables.CMAKE_MODULE_LINKER_FLAGS)
    end
    local scm_text = helper.read_file("rockspec/loganalytics-scm-1.rockspec")
    local release_text = helper.read_file(release_rockspecs()[1])
      :gsub('version = "[^"]*"', 'version = "scm-1"', 1)
      :gsub('\n  tag = "[^"]*",', "", 1)
    assert.equals(scm_text, release_text)
  end)

  it("leave no C source out: CMakeLists.txt names every src/*.c", function()
    local cmake = helper.read_file("CMakeLists.txt")
    local sources = files("src/*.c")
    assert.is_true(#sources > 10)
    for _, path in ipairs(sources) do
      local inflater = path:match("^src/gunzip_(%w+)%.c$")
      if inflater then
        -- the gzip inflater the build picks: src/gunzip_${GUNZIP_INFLATER}.c
        assert.is_truthy(cmake:find("src/gunzip_${GUNZIP_INFLATER}.c", 1, true))
        assert.is_truthy(cmake:find("set(GUNZIP_INFLATER " .. inflater .. ")", 1, true), path)
      else
        assert.is_truthy(cmake:find("[%s(]" .. path:gsub("%.", "%%.") .. "[%s)]"), path .. " is not in CMakeLists.txt")
      end
    end
  end)
end)
