-- claim: move up to N pending ids from the queues, in priority order, into the worker's
-- processing list and start each (pending -> processing). One round trip for a backlog.
-- KEYS[1] processing:<worker>
-- ARGV[1] prefix  ARGV[2] worker id  ARGV[3] N  ARGV[4..] queue names, highest priority first
-- Returns a flat list, 9 fields per started job (see start_job).
local worker = ARGV[2]
local wanted = tonumber(ARGV[3])
local now = now_ms()
local reply = {}
local started = 0
for q = 4, #ARGV do
  local queue = ARGV[q]
  if redis.call('SISMEMBER', P .. 'paused', queue) == 0 then
    while started < wanted do
      local id = redis.call('LMOVE', P .. 'queue:' .. queue, KEYS[1], 'RIGHT', 'LEFT')
      if not id then break end
      if start_job(id, worker, now, reply) then started = started + 1 end
    end
  end
  if started >= wanted then break end
end
return reply
