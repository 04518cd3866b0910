-- wrk script for make bench: every request is the next line of the file
-- BENCH_REQUESTS (written by bench/deliveries: path TAB signature TAB
-- body), so every request is a distinct, signed delivery.  wrk's Lua has
-- no HMAC, hence the pre-signed file.  One thread (wrk -t1): a second one
-- would read the same lines.
--
-- BENCH_PATH sends the same requests to another location (the ceiling),
-- starting the file again at its end.  Otherwise, at the end of the file
-- the thread stops, its last request going to /ceiling: a delivery is
-- never sent twice.

local file = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
local path_override = os.getenv("BENCH_PATH")
if path_override == "" then path_override = nil end
local stopped = false

function request()
   local line = file:read("*l")
   if line == nil and path_override then
      file:seek("set")
      line = file:read("*l")
   end
   if line == nil then
      -- wrk's main thread sleeps for the whole -d duration whatever the
      -- threads do, and ends it early (with its report) on SIGINT; sent
      -- from the background, as system() ignores SIGINT while it waits
      if not stopped then
         stopped = true
         wrk.thread:stop()
         os.execute("(sleep 0.2; kill -INT $PPID) &")
      end
      return wrk.format("GET", "/ceiling")
   end
   local path, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
   return wrk.format("POST", path_override or path,
                     { ["Content-Type"] = "application/json",
                       ["X-Retell-Signature"] = sig }, body)
end
