-- wrk: PUT with an empty body, as the monitoring system sends; with BENCH_TOKEN set, with
-- the access token as a bearer header (the bare app ignores it).
wrk.method = "PUT"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
