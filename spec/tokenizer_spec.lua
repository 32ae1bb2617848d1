-- The JSON tokenizer that replaced yajl must agree with yajl, event for
-- event, on every fixture, recorded response and REST example, and on
-- thousands of deterministic mutations of them, fed in random chunks.
local helper = require "helper"

describe("the JSON tokenizer", function()
  local it_with_tool = helper.has_tool("tokenizer_diff") and it or pending
  it_with_tool("gives yajl's events and verdicts on real and mutated responses", function()
    helper.assert_no_differences("tokenizer_diff", 300, 5000)
  end)
end)
