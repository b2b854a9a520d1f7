-- wrk script shared by bench/load.sh and host/benches/job_service.rs: POSTs one gzip ping
-- (the file named by SUBMIT_BODY) to the submission API and prints one machine-readable line:
-- RESULT requests=N rps=N p50_ms=N p99_ms=N non2xx=N socket_errors=N
wrk.method = "POST"
local f = assert(io.open(assert(os.getenv("SUBMIT_BODY"), "SUBMIT_BODY not set"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json; charset=UTF-8"
wrk.headers["Content-Encoding"] = "gzip"
wrk.path = "/submit/telemetry/04d55860-6948-42dd-92ee-cd9d8d34404e/saved-session/Firefox/40.0a2/aurora/20150522004047"
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, errors))
end
