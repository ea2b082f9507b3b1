-- wrk script for bench/run.py: POST one small chat completion for `demo-general`.
-- Environment: BENCH_TOKEN (bearer token; empty for the direct upstream),
--              BENCH_STREAM=1 for an SSE streaming request.
-- The `done` hook prints one line "BENCH_JSON {...}" that bench/run.py parses.

local token = os.getenv("BENCH_TOKEN") or ""
local stream = os.getenv("BENCH_STREAM") == "1"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.body = '{"model":"demo-general","max_tokens":16,'
  .. '"messages":[{"role":"user","content":"Say hello in five words."}]'
  .. (stream and ',"stream":true' or "")
  .. "}"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max
  ))
end
