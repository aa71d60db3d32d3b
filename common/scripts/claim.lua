-- claim: move up to N pending ids from the queues, in priority order, into the worker's
-- processing list and start each (pending -> processing). One round trip for a backlog.
-- KEYS[1] processing:<worker>
-- ARGV[1] prefix  ARGV[2] worker id  ARGV[3] N  ARGV[4] idle (1|0: the worker runs nothing,
-- so a suspect job may start, alone)  ARGV[5..] queue names, highest priority first
-- Returns a flat list, 10 fields per started job (see start_ids).
local reply = {}
claim_into(ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1', 5, now_ms(), reply)
return reply
