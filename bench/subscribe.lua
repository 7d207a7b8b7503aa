-- wrk script for the subscribe benchmark: every request POSTs JSON with an address never
-- used before (run label from the command line, thread number, counter), so each request
-- does the full work of a new subscription. `done` prints one JSON line for bench/subscribe.py.
--   wrk -t2 -c32 -d10s --latency -s bench/subscribe.lua URL -- LABEL

local counter = 0
local threads_started = 0

function setup(thread)
   threads_started = threads_started + 1
   thread:set("thread_number", threads_started)
end

function init(args)
   local label = args[1] or "run"
   prefix = label .. "-" .. tostring(thread_number) .. "-"
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "broadsheet-bench"

function request()
   counter = counter + 1
   local body = '{"email": "' .. prefix .. counter .. '@example.org", "name": "Load Reader"}'
   return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH-JSON {"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "connect_errors": %d, ' ..
      '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
      '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean))
end
