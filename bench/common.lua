-- Shared by create.lua and get.lua (loaded with dofile, never run on its own).
--
-- Counts every response by HTTP status, in each wrk thread, and prints the
-- totals from done() so that a run full of errors cannot pass for a fast one.
-- run.sh greps the "bench: non2xx=" line.

local M = {}

local threads = {}

-- Called in the main Lua state once per wrk thread, before it starts.
function M.setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

-- Runs in each thread's own Lua state.
function M.init_counters()
   statuses = {}
   responses = 0
   non2xx = 0
end

function M.response(status, headers, body)
   responses = responses + 1
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
      -- keep one example body per status, to make failures diagnosable
      if first_body == nil then
         first_body = {}
      end
      if first_body[status] == nil and body ~= nil then
         first_body[status] = string.sub(body, 1, 200)
      end
   end
end

function M.done(summary, latency, requests)
   local total, bad = 0, 0
   local by_status, example = {}, {}
   for _, t in ipairs(threads) do
      total = total + (t:get("responses") or 0)
      bad = bad + (t:get("non2xx") or 0)
      local s = t:get("statuses") or {}
      for code, n in pairs(s) do
         by_status[code] = (by_status[code] or 0) + n
      end
      local fb = t:get("first_body") or {}
      for code, b in pairs(fb) do
         if example[code] == nil then example[code] = b end
      end
   end
   local parts = {}
   for code, n in pairs(by_status) do
      table.insert(parts, string.format("%d:%d", code, n))
   end
   table.sort(parts)
   io.write(string.format("bench: responses=%d non2xx=%d by_status=%s socket_errors=%d\n",
      total, bad, (#parts > 0) and table.concat(parts, ",") or "-",
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
   for code, b in pairs(example) do
      io.write(string.format("bench: example %d body: %s\n", code, (b:gsub("\n", " "))))
   end
end

-- Reads a required environment variable or stops wrk with a clear message.
function M.need(name)
   local v = os.getenv(name)
   if v == nil or v == "" then
      io.stderr:write("bench: environment variable " .. name .. " is not set\n")
      os.exit(2)
   end
   return v
end

return M
