-- wrk: PUT, each connection waiting BENCH_DELAY_MS between requests (a fixed, lower rate);
-- with BENCH_TOKEN set, with the access token as a bearer header.
wrk.method = "PUT"
local pause = tonumber(os.getenv("BENCH_DELAY_MS")) or 1
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
function delay()
  return pause
end
