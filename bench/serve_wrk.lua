-- serve_wrk.lua — wrk's script for bench/serve_bench.sh: POSTs the JSON body in the file
-- $QRR_BENCH_BODY to the URL given to wrk, counts answers that are not 200, and prints one
-- machine-readable line at the end (latencies in milliseconds).
local f = assert(io.open(os.getenv("QRR_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()

local threads = {}
function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   bad = 0
end

function response(status, headers, body)
   if status ~= 200 then
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local not_200 = 0
   for _, t in ipairs(threads) do
      not_200 = not_200 + t:get("bad")
   end
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d seconds=%.3f not_200=%d socket_errors=%d timeouts=%d " ..
      "p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
      summary.requests, summary.duration / 1e6, not_200,
      e.connect + e.read + e.write, e.timeout,
      latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
      latency:percentile(99) / 1e3, latency.max / 1e3))
end
