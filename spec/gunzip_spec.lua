-- The gzip decoder (src/gunzip.c, over ISA-L) must agree with zlib: every
-- fixture, recording and REST example compressed with each of zlib's levels,
-- strategies and header options decodes to itself when fed in random chunks,
-- and their gzip streams, whole and corrupted (bit flips, cuts), are accepted
-- by both decoders or by neither, with the same bytes.
local helper = require "helper"

describe("the gzip decoder", function()
  it("agrees with zlib on real and corrupted gzip streams", function()
    helper.assert_no_differences("gunzip_diff", 300, 5000)
  end)
end)
