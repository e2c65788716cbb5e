-- wrk: PUT, each connection waiting BENCH_DELAY_MS between requests (a fixed, lower rate).
wrk.method = "PUT"
local pause = tonumber(os.getenv("BENCH_DELAY_MS")) or 1
function delay()
  return pause
end
