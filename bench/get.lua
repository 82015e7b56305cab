-- wrk script: GET /api/tasks/$BENCH_TASK_ID, or the global GET_PATH when a
-- wrapper script (get_group.lua) set one.
-- Env: BENCH_TOKEN (bearer token), BENCH_TASK_ID.

local dir = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./")
local common = dofile(dir .. "common.lua")

local token = common.need("BENCH_TOKEN")
wrk.method = "GET"
wrk.path = GET_PATH or ("/api/tasks/" .. common.need("BENCH_TASK_ID"))
wrk.headers["Authorization"] = "Bearer " .. token

setup = common.setup

function init(args)
   common.init_counters()
end

response = common.response
done = common.done
