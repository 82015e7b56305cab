-- wrk script: POST /api/groups/$BENCH_GROUP_ID/tasks with {"name":"task N"}.
-- Env: BENCH_TOKEN (bearer token), BENCH_GROUP_ID.
-- N is unique across wrk threads: thread id + k * (number of threads).

local dir = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./")
local common = dofile(dir .. "common.lua")

local token = common.need("BENCH_TOKEN")
local gid = common.need("BENCH_GROUP_ID")

wrk.method = "POST"
wrk.path = "/api/groups/" .. gid .. "/tasks"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"

local nthreads_total = tonumber(os.getenv("BENCH_THREADS") or "2")

setup = common.setup

function init(args)
   common.init_counters()
   n = id
end

function request()
   local body = string.format('{"name":"task %d"}', n)
   n = n + nthreads_total
   return wrk.format(nil, nil, nil, body)
end

response = common.response
done = common.done
