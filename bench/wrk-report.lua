-- Loaded by bench/lib/wrk.ts with `wrk -s`.
-- Extra request headers come from the environment, not `-H`, so a bearer token or API key does
-- not show up in the process list. Format: one "Name: value" per line.
local extra = os.getenv("BENCH_WRK_HEADERS")
if extra ~= nil and extra ~= "" then
  for name, value in string.gmatch(extra, "([^:\n]+):[ \t]*([^\n]*)") do
    wrk.headers[name] = value
  end
end

-- Paced load (bench:paired's latency at a fixed rate): each connection waits about this long
-- after an answer before its next request, so the rate is about connections / (delay + latency),
-- well under saturation, and latency is service time rather than queueing. The wait is drawn
-- from [0, 2 × delay): a fixed one keeps all connections in step, and their requests then arrive
-- in bursts of 64 that queue behind each other.
local pace = tonumber(os.getenv("BENCH_WRK_DELAY_MS") or "")
if pace ~= nil then
  function delay()
    return math.random(0, 2 * pace - 1)
  end
end

-- wrk's own --latency output rounds to two decimals of a unit; this line gives exact
-- microseconds to bench/lib/wrk.ts. No response() callback: it would make wrk parse every
-- response into Lua and turn the load generator into the bottleneck.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
