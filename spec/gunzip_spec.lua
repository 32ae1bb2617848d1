-- The gzip decoder (src/gunzip.c, over ISA-L) must agree with zlib: every
-- fixture, recording and REST example compressed with each of zlib's levels,
-- strategies and header options decodes to itself when fed in random chunks,
-- and their gzip streams, whole and corrupted (bit flips, cuts), are accepted
-- by both decoders or by neither, with the same bytes.
describe("the gzip decoder", function()
  it("agrees with zlib on real and corrupted gzip streams", function()
    local pipe = io.popen("build/gunzip_diff -n 300 spec/fixtures/*.json ../shared/recorded/*.json ../shared/wire/*.json 2>&1")
    local out = pipe:read("*a")
    local ok, _, code = pipe:close()
    assert.is_true(ok == true or code == 0, out)
    local inputs, differences = out:match("(%d+) inputs, (%d+) differences")
    assert.is_true(tonumber(inputs) > 5000, out)
    assert.equals("0", differences)
  end)
end)
