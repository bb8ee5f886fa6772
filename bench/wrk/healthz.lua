-- wrk script for `citywallet bench payments`: the GET /healthz baseline on the same server.
--
--   wrk -t2 -c32 -d20s --latency -s bench/wrk/healthz.lua http://127.0.0.1:PORT/healthz
--
-- Plain GETs (wrk's default request); done() prints the figures in the same machine-readable
-- form as payments.lua, counting answers other than 200.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

non200 = 0
statuses = ""
local status_counts = {}

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
      status_counts[status] = (status_counts[status] or 0) + 1
      local parts = {}
      for code, n in pairs(status_counts) do
         parts[#parts + 1] = code .. ":" .. n
      end
      statuses = table.concat(parts, ",")
   end
end

function done(summary, latency, requests)
   local total, merged = 0, {}
   for _, thread in ipairs(threads) do
      total = total + thread:get("non200")
      for code, n in string.gmatch(thread:get("statuses"), "(%d+):(%d+)") do
         merged[code] = (merged[code] or 0) + tonumber(n)
      end
   end
   local parts = {}
   for code, n in pairs(merged) do
      parts[#parts + 1] = code .. ":" .. n
   end
   io.write(string.format(
      "CW_STATS requests=%d duration_us=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f "
         .. "max_us=%.0f mean_us=%.0f connect=%d read=%d write=%d timeout=%d status=%d "
         .. "non_expected=%d exhausted=0\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
      summary.errors.status, total))
   io.write("CW_STATUSES " .. table.concat(parts, ",") .. "\n")
   io.write("CW_SAMPLE \n")
end
