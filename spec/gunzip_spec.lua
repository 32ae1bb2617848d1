-- The gzip decoder (src/gunzip.c, over ISA-L's igzip or, built without it,
-- zlib's raw inflate: the one this build has) must agree with zlib: every
-- fixture, recording and REST example compressed with each of zlib's levels,
-- strategies and header options decodes to itself when fed in random chunks,
-- and their gzip streams, whole and corrupted (bit flips, cuts), are accepted
-- by both decoders or by neither, with the same bytes.
local helper = require "helper"

describe("the gzip decoder", function()
  it("is the one the build was asked for", function()
    local core = require "loganalytics.core"
    assert.is_truthy(core.gzip_inflater == "isal" or core.gzip_inflater == "zlib", core.gzip_inflater)
    -- make test-no-isal: the suite must run on zlib's inflater, not ISA-L's
    local expected = os.getenv("LA_EXPECT_INFLATER")
    if expected then assert.equals(expected, core.gzip_inflater) end
  end)

  local it_with_tool = helper.has_tool("gunzip_diff") and it or pending
  it_with_tool("agrees with zlib on real and corrupted gzip streams", function()
    helper.assert_no_differences("gunzip_diff", 300, 5000)
  end)
end)
