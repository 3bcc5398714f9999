-- wrk script for bench/http-load.sh: every request a different query text (so the query cache never answers),
-- and the latency percentiles the benchmark reports, printed as one line wrk's own summary lacks.
local words = { "a dense residential area", "a river with trees", "storage tanks", "a baseball field", "an airport",
                "a golf course", "a parking lot", "farmland", "a beach", "a harbor with boats", "tennis courts", "a freeway" }
local thread_id = 0
local counter = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
end

-- A tag per wrk run and thread: no text repeats across runs either, so the host's query cache never answers.
local tag = ""
function init(args)
  counter = 0
  math.randomseed(os.time() * 100 + (id or 0))
  tag = tostring(os.time()) .. "x" .. tostring(math.random(1, 1000000))
end

function request()
  counter = counter + 1
  local text = words[(counter % #words) + 1] .. " " .. tag .. "-" .. tostring(id) .. "-" .. tostring(counter)
  return wrk.format("GET", "/api/search?k=10&q=" .. text:gsub(" ", "%%20"))
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d seconds=%.3f rps=%.2f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
