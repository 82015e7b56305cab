-- wrk script: GET /api/groups/$BENCH_GROUP20_ID (a group with 20 tasks).
-- Env: BENCH_TOKEN (bearer token), BENCH_GROUP20_ID.

local dir = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./")
local common = dofile(dir .. "common.lua")

local token = common.need("BENCH_TOKEN")
local gid = common.need("BENCH_GROUP20_ID")

wrk.method = "GET"
wrk.path = "/api/groups/" .. gid
wrk.headers["Authorization"] = "Bearer " .. token

setup = common.setup

function init(args)
   common.init_counters()
end

response = common.response
done = common.done
