-- wrk: PUT carrying a small JSON body (`{}`, Content-Type: application/json), as many HTTP
-- clients send with PUT; wrk adds the Content-Length. With BENCH_TOKEN set, with the access
-- token as a bearer header (the bare app ignores it).
wrk.method = "PUT"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
