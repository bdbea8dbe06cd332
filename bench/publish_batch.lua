-- wrk script: batches of 100 structured CloudEvents per request, unique ids.
local counter = 0

function init(args)
  -- LuaJIT starts every run from the same seed: without this, a second run
  -- against the same server would publish only duplicates.
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  prefix = "b" .. tostring(math.random(1, 1e9))
end

request = function()
  local parts = {}
  for i = 1, 100 do
    counter = counter + 1
    parts[i] = '{"specversion":"1.0","id":"' .. prefix .. "-" .. counter ..
      '","source":"/bench","type":"bench.event","data":{"n":' .. counter ..
      ',"payload":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}'
  end
  return wrk.format("POST", "/v1/topics/bench-batch/events",
    {["Content-Type"] = "application/cloudevents-batch+json"}, "[" .. table.concat(parts, ",") .. "]")
end

response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
