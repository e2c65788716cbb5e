-- wrk: PUT /<id> for every id of the file BENCH_IDS (one a line), in turn, so that a run
-- goes through a whole set of service ids (those a pod's shard owns, or those it forwards to
-- another shard). BENCH_DELAY_MS > 0 makes each connection wait that long after every answer
-- (a fixed, lower rate); with BENCH_TOKEN set, the access token goes as a bearer header.
local paths = {}
for line in io.lines(os.getenv("BENCH_IDS")) do
  if line ~= "" then
    paths[#paths + 1] = "/" .. line
  end
end
local headers = {}
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end
local pause = tonumber(os.getenv("BENCH_DELAY_MS")) or 0
local next_id = 0

function request()
  next_id = next_id % #paths + 1
  return wrk.format("PUT", paths[next_id], headers)
end

if pause > 0 then
  function delay()
    return pause
  end
end
