-- wrk script for `citywallet bench redpackets` part B: each request registers one resident
-- for the campaign through POST /v1/campaigns/{id}/registrations.
--
--   wrk -t2 -c16 -d10s --latency -s bench/wrk/campaign_register.lua http://127.0.0.1:PORT \
--       -- <tokens file> <wrk threads> <campaign id>
--
-- The tokens file (written by bench/redpackets.py) has one session token per line, one
-- resident each. Thread k (1-based) of n takes only the lines k, k+n, ... so no resident
-- registers twice. Out of residents, a thread asks GET /healthz and counts it as exhausted.
-- done() prints the figures in the same machine-readable form as payments.lua (CW_ lines).

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local tokens = {}
local count, index = 0, 0
local path_ = ""
created, non201, exhausted = 0, 0, 0
statuses, sample = "", ""
local status_counts = {}

function init(args)
   local path, nthreads = args[1], tonumber(args[2])
   path_ = "/v1/campaigns/" .. args[3] .. "/registrations"
   local line_no = 0
   for line in io.lines(path) do
      if line_no % nthreads == id - 1 then
         count = count + 1
         tokens[count] = "Bearer " .. line
      end
      line_no = line_no + 1
   end
end

function request()
   index = index + 1
   if index > count then
      exhausted = exhausted + 1
      return wrk.format("GET", "/healthz")
   end
   return wrk.format("POST", path_, { ["Authorization"] = tokens[index] })
end

function response(status, headers, body)
   if status == 201 then
      created = created + 1
   elseif not (status == 200 and index > count) then
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
   local total_created, total_non201, total_exhausted, merged, first = 0, 0, 0, {}, ""
   for _, thread in ipairs(threads) do
      total_created = total_created + thread:get("created")
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
      "CW_STATS requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f created=%d "
         .. "non_expected=%d exhausted=%d errors=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      total_created, total_non201, total_exhausted,
      summary.errors.connect + summary.errors.read + summary.errors.write
         + summary.errors.timeout))
   io.write("CW_STATUSES " .. table.concat(parts, ",") .. "\n")
   io.write("CW_SAMPLE " .. first .. "\n")
end
