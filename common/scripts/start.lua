-- start: pending -> processing for one id the worker already moved with BLMOVE. A worker
-- blocks only when it runs nothing, so a suspect job may start here (alone).
-- KEYS[1] processing:<worker>
-- ARGV[1] prefix  ARGV[2] worker id  ARGV[3] job id  ARGV[4] queue it came from
-- Returns 10 fields (see start_ids), {} when the job is gone, cancelled or its queue paused.
local worker, id, queue = ARGV[2], ARGV[3], ARGV[4]
if redis.call('SISMEMBER', P .. 'paused', queue) == 1 then
  -- Paused while we were blocked: hand the id back to the front of its queue.
  if redis.call('LREM', KEYS[1], 1, id) > 0 then
    redis.call('RPUSH', P .. 'queue:' .. queue, id)
  end
  return {}
end
local reply = {}
start_ids(worker, queue, {id}, now_ms(), reply, {started = 0, idle = true, stop = false})
return reply
