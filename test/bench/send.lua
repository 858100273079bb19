-- wrk script: POST valid SMS with unique bodies spread over ~500 conversations (500 senders → 1 recipient pair each).
-- Counts non-2xx answers so the benchmark can require zero of them.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  path = args[1] or "/api/messages/sms"
end

function request()
  counter = counter + 1
  local pair = counter % 500
  local body = string.format(
    '{"from":"+1201555%04d","to":"+18045550000","type":"sms","body":"bench %d-%d","attachments":null,"timestamp":"2024-11-01T14:00:00Z"}',
    pair, tid, counter)
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status < 200 or status >= 300 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("non2xx") end
  io.write(string.format("non-2xx: %d\n", total))
  io.write(string.format("p50: %.2f ms  p90: %.2f ms  p99: %.2f ms  max: %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("requests/s: %.0f  (errors: connect %d, read %d, write %d, timeout %d, status %d)\n",
    summary.requests / (summary.duration / 1e6), summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status))
end
