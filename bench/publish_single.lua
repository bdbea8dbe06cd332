-- wrk script: one small structured CloudEvent per request, unique ids.
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  -- LuaJIT starts every run from the same seed: without this, a second run
  -- against the same server would publish only duplicates.
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  prefix = "w" .. tostring(tid or 0) .. "-" .. tostring(math.random(1, 1e9))
end

request = function()
  counter = counter + 1
  local body = '{"specversion":"1.0","id":"' .. prefix .. "-" .. counter ..
    '","source":"/bench","type":"bench.event","data":{"n":' .. counter ..
    ',"payload":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}'
  return wrk.format("POST", "/v1/topics/bench/events",
    {["Content-Type"] = "application/cloudevents+json"}, body)
end

response = function(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
