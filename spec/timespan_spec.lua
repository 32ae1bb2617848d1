-- Unit tests of loganalytics.timespan: ISO 8601 checks and formatting.
local timespan = require "loganalytics.timespan"

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok, err
end

describe("loganalytics.timespan", function()
  describe("is_duration", function()
    local valid = {
      "PT1H", "P1D", "P1DT12H", "PT30M", "PT45S", "PT1H30M", "P1Y", "P2M", "P1W",
      "P1Y2M3D", "P1DT1H1M1S", "PT0.5S", "PT1M30.25S", "PT3600S",
    }
    for _, s in ipairs(valid) do
      it("accepts " .. s, function()
        assert.is_true(timespan.is_duration(s))
      end)
    end

    local invalid = {
      "", "P", "PT", "1D", "PT1", "P1H", "PT1D", "P1M1Y", "PT1S1M", "PT1.5M30S",
      "P1DT", "P-1D", "PT1.S", "PT.5S", "1H", "P1D ", " P1D", "yesterday",
      "2024-01-01T00:00:00Z",
    }
    for _, s in ipairs(invalid) do
      it(("rejects %q"):format(s), function()
        assert.is_false(timespan.is_duration(s))
      end)
    end
  end)

  describe("is_datetime", function()
    local valid = {
      "2024-01-01", "2024-01-01T00:00:00Z", "2024-12-31T23:59:59Z", "2024-01-01T00:00:00.123Z",
      "2017-08-24T06:59:59.1234567Z", "2024-01-01T00:00:00.123+02:00", "2024-01-01T00:00:00-0530",
      "2024-01-01T10:30Z", "2024-01-01 10:30:00", "2024-01-01T00:00:00",
    }
    for _, s in ipairs(valid) do
      it("accepts " .. s, function()
        assert.is_true(timespan.is_datetime(s))
      end)
    end

    local invalid = {
      "", "yesterday", "2024-1-1", "24-01-01", "2024-13-01", "2024-00-10", "2024-01-32",
      "2024-01-00", "2024-01-01T25:00:00Z", "2024-01-01T00:60:00Z", "2024-01-01T00:00:61Z",
      "2024-01-01T00:00:00+2", "2024-01-01T00:00:00ZZ", "2024-01-01T", "2024-01-01T00",
      "PT1H", "2024/01/01",
    }
    for _, s in ipairs(invalid) do
      it(("rejects %q"):format(s), function()
        assert.is_false(timespan.is_datetime(s))
      end)
    end
  end)

  describe("is_valid", function()
    local valid = {
      "PT1H", "P1D",
      "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z",
      "2024-01-01T00:00:00Z/PT1H",
      "PT1H/2024-01-02T00:00:00Z",
      "2024-01-01/2024-01-02",
    }
    for _, s in ipairs(valid) do
      it("accepts " .. s, function()
        assert.is_true(timespan.is_valid(s))
      end)
    end

    local invalid = {
      "", "yesterday", "P", "2024-01-01T00:00:00Z", "PT1H/PT2H", "a/b",
      "2024-01-01T00:00:00Z/", "/2024-01-01T00:00:00Z", "2024-01-01/2024-01-02/2024-01-03",
      "2024-01-01T00:00:00Z/yesterday",
    }
    for _, s in ipairs(invalid) do
      it(("rejects %q"):format(s), function()
        assert.is_false(timespan.is_valid(s))
      end)
    end
  end)

  describe("format", function()
    it("returns valid strings exactly as given", function()
      for _, s in ipairs { "PT1H", "P1D", "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z",
                           "2024-01-01T00:00:00Z/PT1H", "PT1H/2024-01-02T00:00:00Z" } do
        assert.are.equal(s, timespan.format(s))
      end
    end)

    it("raises for strings that are neither a duration nor an interval", function()
      for _, s in ipairs { "", "yesterday", "P", "PT1H/PT2H", "1 hour" } do
        assert.is_true(raises(timespan.format, s), s)
      end
    end)

    it("gives whole seconds as PT<n>S", function()
      assert.are.equal("PT1S", timespan.format(1))
      assert.are.equal("PT3600S", timespan.format(3600))
      assert.are.equal("PT3600S", timespan.format(3600.0))
      assert.are.equal("PT86400S", timespan.format(86400))
    end)

    it("gives fractional seconds with their fraction and no trailing zeros", function()
      assert.are.equal("PT0.5S", timespan.format(0.5))
      assert.are.equal("PT90.25S", timespan.format(90.25))
      assert.are.equal("PT0.001S", timespan.format(0.001))
    end)

    it("gives a valid ISO 8601 duration for every positive number of seconds", function()
      for _, seconds in ipairs { 1, 0.5, 0.001, 12.345678, 1.0000001, 59.9999999, 1e-7 } do
        local ok, text = pcall(timespan.format, seconds)
        if ok then
          assert(timespan.is_duration(text),
            ("format(%.17g) gave %q, which is not an ISO 8601 duration"):format(seconds, text))
        end
      end
    end)

    it("raises for zero, negative, infinite and nan seconds", function()
      for _, v in ipairs { 0, -5, -0.5, math.huge, -math.huge, 0 / 0 } do
        assert.is_true(raises(timespan.format, v), tostring(v))
      end
    end)

    it("formats {start, finish} epoch seconds as UTC date-times", function()
      assert.are.equal("1970-01-01T00:00:00Z/2024-01-01T00:00:00Z",
        timespan.format { start = 0, finish = 1704067200 })
      assert.are.equal("2000-02-29T00:00:00Z/9999-12-31T23:59:59Z",
        timespan.format { start = 951782400, finish = 253402300799 })
    end)

    it("keeps fractions of epoch seconds without trailing zeros", function()
      assert.are.equal("2024-01-01T00:00:00.5Z/2024-01-01T00:00:01.25Z",
        timespan.format { start = 1704067200.5, finish = 1704067201.25 })
      assert.are.equal("2024-01-01T00:00:00.000001Z/2024-01-01T00:00:00.123Z",
        timespan.format { start = 1704067200.000001, finish = 1704067200.123 })
    end)

    it("formats {start, duration} and {duration, finish}", function()
      assert.are.equal("2024-01-01T00:00:00Z/PT3600S",
        timespan.format { start = 1704067200, duration = 3600 })
      assert.are.equal("2024-01-01T00:00:00Z/P1D",
        timespan.format { start = "2024-01-01T00:00:00Z", duration = "P1D" })
      assert.are.equal("PT1.5S/2024-01-01T00:00:00Z",
        timespan.format { duration = 1.5, finish = 1704067200 })
      assert.are.equal("PT30M/2024-01-01T00:00:00Z",
        timespan.format { duration = "PT30M", finish = "2024-01-01T00:00:00Z" })
    end)

    it("keeps ISO strings in tables as given", function()
      assert.are.equal("2024-01-01T00:00:00.123+02:00/2024-01-02",
        timespan.format { start = "2024-01-01T00:00:00.123+02:00", finish = "2024-01-02" })
    end)

    local bad_tables = {
      { "an empty table", {} },
      { "only a start", { start = 1 } },
      { "only a finish", { finish = 1 } },
      { "only a duration", { duration = 1 } },
      { "all three fields", { start = 1, finish = 2, duration = 3 } },
      { "an unknown field", { start = 1, finish = 2, stop = 3 } },
      { "a start that is not a date-time", { start = "yesterday", finish = 2 } },
      { "a negative start", { start = -1, finish = 2 } },
      { "a start beyond year 9999", { start = 253402300800, finish = 253402300900 } },
      { "a nan finish", { start = 1, finish = 0 / 0 } },
      { "a boolean start", { start = true, finish = 2 } },
      { "a duration that is not ISO", { start = 1, duration = "1 hour" } },
      { "a negative duration", { start = 1, duration = -60 } },
      { "a zero duration", { duration = 0, finish = 2 } },
    }
    for _, case in ipairs(bad_tables) do
      it("raises for a table with " .. case[1], function()
        assert.is_true(raises(timespan.format, case[2]))
      end)
    end

    it("raises for values that are not strings, numbers or tables", function()
      for _, v in ipairs { true, false, print } do
        assert.is_true(raises(timespan.format, v), tostring(v))
      end
      assert.is_true(raises(timespan.format, nil))
    end)

    it("names the problem in its error message", function()
      local _, err = raises(timespan.format, "yesterday")
      assert.truthy(tostring(err):find("yesterday", 1, true), tostring(err))
      local _, err2 = raises(timespan.format, { start = 1, finish = 2, stop = 3 })
      assert.truthy(tostring(err2):find("stop", 1, true), tostring(err2))
    end)
  end)
end)
