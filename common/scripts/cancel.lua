-- cancel: pending | scheduled -> cancelled.
-- KEYS[1] job hash
-- ARGV[1] prefix  ARGV[2] job id  ARGV[3] result ttl (ms)
-- Returns {"ok"} | {"invalid_transition", status} | {"not_found"}
local job = load(ARGV[2])
if not job then return {'not_found'} end
if job.status == ST.pending then
  -- If a worker already moved the id into its list, start_ids drops it on seeing "cancelled".
  redis.call('LREM', P .. 'queue:' .. job.queue, 1, job.id)
elseif job.status == ST.scheduled then
  redis.call('ZREM', P .. 'scheduled:' .. job.queue, job.id)
else
  return {'invalid_transition', job.status}
end
local now = now_ms()
set_status(job, ST.cancelled, 'finished_at', now)
count('cancelled', job)
expire_terminal(job, now, tonumber(ARGV[3]))
return {'ok'}
