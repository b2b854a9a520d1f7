-- wrk script shared by bench/load.sh and host/benches/job_service.rs: POSTs one gzip ping
-- (the file named by SUBMIT_BODY) to the submission API and prints one machine-readable line:
-- RESULT requests=N rps=N p50_ms=N p99_ms=N non2xx=N socket_errors=N
-- Optional (bench/e2e.sh): SUBMIT_DELAY_MS paces each connection (one request per response plus
-- that delay); SUBMIT_RUN=N gives every request its own document id, unique per run N (so
-- de-duplication stores each one).
wrk.method = "POST"
local f = assert(io.open(assert(os.getenv("SUBMIT_BODY"), "SUBMIT_BODY not set"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json; charset=UTF-8"
wrk.headers["Content-Encoding"] = "gzip"
local dims = "/saved-session/Firefox/40.0a2/aurora/20150522004047"
wrk.path = "/submit/telemetry/04d55860-6948-42dd-92ee-cd9d8d34404e" .. dims
local delay_ms = tonumber(os.getenv("SUBMIT_DELAY_MS") or "")
if delay_ms then
  function delay() return delay_ms end
end
local run = tonumber(os.getenv("SUBMIT_RUN") or "")
if run then
  local threads = 0
  function setup(thread)
    threads = threads + 1
    thread:set("thread_number", threads)
  end
  local sent = 0
  function request()
    sent = sent + 1
    local id = string.format("%08x-%04x-4000-8000-%012x", run, thread_number, sent)
    return wrk.format(nil, "/submit/telemetry/" .. id .. dims)
  end
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, errors))
end
