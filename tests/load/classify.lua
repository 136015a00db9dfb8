-- wrk script for bct serve: POST /classify with one sentence per request,
-- cycling through a file of ready-made JSON bodies (one per line).
--   wrk -s classify.lua URL -- BODIES_FILE [PATH]
-- At the end it prints one machine-readable line:
--   RESULT requests=N seconds=S rps=R p50_ms=A p90_ms=B p99_ms=C non2xx=E errors=F

local bodies = {}
local path = "/classify"
local index = 0

function init(args)
    local file = args[1] or "bodies.jsonl"
    path = args[2] or path
    for line in io.lines(file) do
        if #line > 0 then bodies[#bodies + 1] = line end
    end
    if #bodies == 0 then error("no request bodies in " .. file) end
    -- Threads start at different places in the file.
    index = math.random(#bodies) - 1
end

function request()
    index = index % #bodies + 1
    return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, bodies[index])
end

function done(summary, latency, requests)
    -- errors.status counts answers with a status of 400 or more.
    local e = summary.errors
    local seconds = summary.duration / 1e6
    io.write(string.format(
        "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f non2xx=%d errors=%d\n",
        summary.requests, seconds, summary.requests / seconds,
        latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
        e.status, e.connect + e.read + e.write + e.timeout))
end
