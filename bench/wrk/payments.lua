-- wrk script for `citywallet bench payments`: each request pays one dynamic merchant QR code.
--
--   wrk -t2 -c32 -d20s --latency -s bench/wrk/payments.lua http://127.0.0.1:PORT \
--       -- <requests file> <wrk threads> <run tag>
--
-- The requests file (written by bench/payments.py) has one line per unpaid order:
--   <session token> TAB <JSON body {"payload": "<EMV payload>", "pin": "<PIN>"}>
-- Thread k (1-based) of n takes only the lines k, k+n, k+2n, ... so no two threads (and no
-- two requests) ever pay the same order. Every request carries its own Idempotency-Key.
-- Answers other than 201 are counted per status; done() prints one machine-readable line per
-- figure (prefix CW_) that bench/payments.py parses, beside wrk's own report.

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local tokens, bodies = {}, {}
local count, index = 0, 0
local tag = "run"
non201, exhausted = 0, 0
statuses, sample = "", ""
local status_counts = {}

function init(args)
   local path, nthreads = args[1], tonumber(args[2])
   tag = args[3] or tag
   local line_no = 0
   for line in io.lines(path) do
      if line_no % nthreads == id - 1 then
         local tab = line:find("\t", 1, true)
         count = count + 1
         tokens[count] = "Bearer " .. line:sub(1, tab - 1)
         bodies[count] = line:sub(tab + 1)
      end
      line_no = line_no + 1
   end
end

function request()
   index = index + 1
   if index > count then
      -- Out of unpaid orders: never pay one twice; ask something harmless and count it.
      exhausted = exhausted + 1
      return wrk.format("GET", "/healthz")
   end
   local headers = {
      ["Authorization"] = tokens[index],
      ["Idempotency-Key"] = tag .. "-" .. id .. "-" .. index,
      ["Content-Type"] = "application/json",
   }
   return wrk.format("POST", "/v1/payments/scan", headers, bodies[index])
end

function response(status, headers, body)
   if status ~= 201 then
      non201 = non201 + 1
      status_counts[status] = (status_counts[status] or 0) + 1
      local parts = {}
      for code, n in pairs(status_counts) do
         parts[#parts + 1] = code .. ":" .. n
      end
      statuses = table.concat(parts, ",")
      if sample == "" and body ~= nil then
         sample = tostring(status) .. " " .. body:sub(1, 300):gsub("[\r\n\t]", " ")
      end
   end
end

function done(summary, latency, requests)
   local total_non201, total_exhausted, merged, first = 0, 0, {}, ""
   for _, thread in ipairs(threads) do
      total_non201 = total_non201 + thread:get("non201")
      total_exhausted = total_exhausted + thread:get("exhausted")
      for code, n in string.gmatch(thread:get("statuses"), "(%d+):(%d+)") do
         merged[code] = (merged[code] or 0) + tonumber(n)
      end
      if first == "" then
         first = thread:get("sample")
      end
   end
   local parts = {}
   for code, n in pairs(merged) do
      parts[#parts + 1] = code .. ":" .. n
   end
   io.write(string.format(
      "CW_STATS requests=%d duration_us=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f "
         .. "max_us=%.0f mean_us=%.0f connect=%d read=%d write=%d timeout=%d status=%d "
         .. "non_expected=%d exhausted=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
      summary.errors.status, total_non201, total_exhausted))
   io.write("CW_STATUSES " .. table.concat(parts, ",") .. "\n")
   io.write("CW_SAMPLE " .. first .. "\n")
end
