-- wrk script for bench/http.py: POST one JSON body, report percentiles as JSON.
-- The body file and content type come from the environment (BENCH_BODY_FILE,
-- BENCH_CONTENT_TYPE) so the same script drives the API and the echo app.

local path = os.getenv("BENCH_BODY_FILE")
local file = assert(io.open(path, "rb"), "cannot open BENCH_BODY_FILE " .. tostring(path))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
-- The API needs a key (issue 11); the echo app ignores it (both get the same header bytes).
local key = os.getenv("BENCH_API_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- No response() callback: it would make wrk parse every body. Answers with a
-- status >= 400 are counted in summary.errors.status, which bench/http.py
-- requires to be 0 (a benchmark of error responses measures nothing).

done = function(summary, latency, requests)
  local errors = summary.errors
  -- One line, prefixed so bench/http.py can find it among wrk's own output.
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "requests_per_s": %.3f, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
