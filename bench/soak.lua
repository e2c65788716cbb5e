-- wrk for the soak: PUT with an empty body on every known id in turn (ids, one a line, in the
-- file named by SOAK_IDS), with SOAK_TOKEN (when set) as a bearer token, each connection
-- pausing SOAK_DELAY_MS between requests; counts
-- answers by status exactly and prints one "SOAK {json}" line at the end (bench/soak.py).
local threads = {}
local pause = tonumber(os.getenv("SOAK_DELAY_MS")) or 0
local token = os.getenv("SOAK_TOKEN")
local headers = {}
if token and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ids = {}
  for line in io.lines(os.getenv("SOAK_IDS")) do
    if #line > 0 then
      ids[#ids + 1] = line
    end
  end
  next_id = 0
  ok = 0
  non200 = 0
end

function request()
  next_id = next_id % #ids + 1
  return wrk.format("PUT", "/" .. ids[next_id], headers)
end

function delay()
  return pause
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local ok_total, non200_total = 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    non200_total = non200_total + thread:get("non200")
  end
  local e = summary.errors
  io.write(string.format(
    'SOAK {"requests": %d, "ok": %d, "non200": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"p999_us": %d, "max_us": %d}\n',
    summary.requests, ok_total, non200_total, e.connect, e.read, e.write, e.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
