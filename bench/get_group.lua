-- wrk script: GET /api/groups/$BENCH_GROUP20_ID (a group with 20 tasks): get.lua
-- with another path. Env: BENCH_TOKEN, BENCH_GROUP20_ID.
local dir = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./")
GET_PATH = "/api/groups/" .. (os.getenv("BENCH_GROUP20_ID") or error("BENCH_GROUP20_ID is not set"))
dofile(dir .. "get.lua")
