-- wrk script: GET /api/tasks/$BENCH_TASK_ID.
-- Env: BENCH_TOKEN (bearer token), BENCH_TASK_ID.

local dir = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./")
local common = dofile(dir .. "common.lua")

local token = common.need("BENCH_TOKEN")
local tid = common.need("BENCH_TASK_ID")

wrk.method = "GET"
wrk.path = "/api/tasks/" .. tid
wrk.headers["Authorization"] = "Bearer " .. token

setup = common.setup

function init(args)
   common.init_counters()
end

response = common.response
done = common.done
