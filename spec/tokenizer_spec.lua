-- The JSON tokenizer that replaced yajl must agree with yajl, event for
-- event, on every fixture, recorded response and REST example, and on
-- thousands of deterministic mutations of them, fed in random chunks.
describe("the JSON tokenizer", function()
  it("gives yajl's events and verdicts on real and mutated responses", function()
    local pipe = io.popen("build/tokenizer_diff -n 300 spec/fixtures/*.json ../shared/recorded/*.json ../shared/wire/*.json 2>&1")
    local out = pipe:read("*a")
    local ok, _, code = pipe:close()
    assert.is_true(ok == true or code == 0, out)
    local inputs, differences = out:match("(%d+) inputs, (%d+) differences")
    assert.is_true(tonumber(inputs) > 5000, out)
    assert.equals("0", differences)
  end)
end)
