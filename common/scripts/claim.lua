-- claim: move up to N pending ids from the queues, in priority order, into the worker's
-- processing list and start each (pending -> processing). One round trip for a backlog.
-- KEYS[1] processing:<worker_id>  KEYS[2] paused  KEYS[3] stats  KEYS[4] inflight
-- KEYS[5] deadlines  KEYS[6..12] status:*  KEYS[13] jobs  KEYS[14..] queue:<queues> (one per name in ARGV[5..])
-- ARGV[1] prefix  ARGV[2] worker id  ARGV[3] N  ARGV[4] idle (1|0: the worker runs nothing,
-- so a suspect job may start, alone)  ARGV[5..] queue names, highest priority first
-- Returns a flat list, 10 fields per started job (see start_ids), then, when a queue's limit
-- held a job back, one more: how long (ms) to wait before claiming again.
local reply = {}
local _, wait = claim_into(ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1', 5, now_ms(), reply)
if wait > 0 then reply[#reply + 1] = wait end
return reply
