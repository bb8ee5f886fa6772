-- wrk script for `citywallet bench payments`: each request is one payment of one kind.
--
--   wrk -t2 -c32 -d20s --latency -s bench/wrk/payments.lua http://127.0.0.1:PORT \
--       -- <requests file> <wrk threads> <run tag> [<path> <expected status> <mode>]
--
-- path defaults to /v1/payments/scan, the expected status to 201, the mode to "bearer".
--
-- mode "bearer" (scan payments, P2P transfers): the requests file (written by
-- bench/payments.py) has one line per payment:
--   <session token> TAB <JSON body>
-- and every request carries the bearer token and its own Idempotency-Key.
-- mode "signed" (payment-code charges by a merchant's server): one line per charge:
--   <TOTP time step> TAB <Authorization header> TAB <JSON body>
-- A payment code is valid for its 60-second time step only and each device pays once per
-- step, so a request takes the next unused line of the step the clock is in now (os.time()).
--
-- Thread k (1-based) of n takes only the lines k, k+n, k+2n, ... so no two threads (and no
-- two requests) ever use the same line. Answers other than the expected status are counted
-- per status; done() prints one machine-readable line per figure (prefix CW_) that
-- bench/payments.py parses, beside wrk's own report.

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
local path, expected, mode = "/v1/payments/scan", 201, "bearer"
local steps = {} -- signed mode: time step -> {auths = {...}, bodies = {...}, next = 1}
non201, exhausted = 0, 0
statuses, sample = "", ""
local status_counts = {}

function init(args)
   local file, nthreads = args[1], tonumber(args[2])
   tag = args[3] or tag
   path = args[4] or path
   expected = tonumber(args[5] or expected)
   mode = args[6] or mode
   local line_no = 0
   for line in io.lines(file) do
      if line_no % nthreads == id - 1 then
         local tab = line:find("\t", 1, true)
         if mode == "signed" then
            local step = tonumber(line:sub(1, tab - 1))
            local rest = line:sub(tab + 1)
            local tab2 = rest:find("\t", 1, true)
            local bucket = steps[step]
            if bucket == nil then
               bucket = {auths = {}, bodies = {}, next = 1}
               steps[step] = bucket
            end
            bucket.auths[#bucket.auths + 1] = rest:sub(1, tab2 - 1)
            bucket.bodies[#bucket.bodies + 1] = rest:sub(tab2 + 1)
         else
            count = count + 1
            tokens[count] = "Bearer " .. line:sub(1, tab - 1)
            bodies[count] = line:sub(tab + 1)
         end
      end
      line_no = line_no + 1
   end
end

local function spare()
   -- Out of lines: never pay twice; ask something harmless and count it.
   exhausted = exhausted + 1
   return wrk.format("GET", "/healthz")
end

function request()
   if mode == "signed" then
      local bucket = steps[math.floor(os.time() / 60)]
      if bucket == nil or bucket.next > #bucket.auths then
         return spare()
      end
      local i = bucket.next
      bucket.next = i + 1
      local headers = {
         ["Authorization"] = bucket.auths[i],
         ["Content-Type"] = "application/json",
      }
      return wrk.format("POST", path, headers, bucket.bodies[i])
   end
   index = index + 1
   if index > count then
      return spare()
   end
   local headers = {
      ["Authorization"] = tokens[index],
      ["Idempotency-Key"] = tag .. "-" .. id .. "-" .. index,
      ["Content-Type"] = "application/json",
   }
   return wrk.format("POST", path, headers, bodies[index])
end

function response(status, headers, body)
   if status ~= expected then
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
