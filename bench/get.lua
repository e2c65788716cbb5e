-- wrk: GET without a body (a person or a script reading the document). With BENCH_TOKEN set,
-- with the access token as a bearer header (the bare app ignores it).
wrk.method = "GET"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
