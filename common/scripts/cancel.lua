-- cancel: pending | scheduled | waiting -> cancelled; processing -> processing with cancel_requested.
-- KEYS[1] job:<job_id>  KEYS[2] stats  KEYS[3] expiries  KEYS[4..10] status:*  KEYS[11] jobs
-- ARGV[1] prefix  ARGV[2] job id  ARGV[3] result ttl (ms)
-- Returns {"ok"} | {"cancel_requested"} | {"invalid_transition", status} | {"not_found"}
local job = load(ARGV[2])
if not job then return {'not_found'} end
if job.status == ST.processing then
  -- Only the run can stop itself: its handler sees the flag at its next checkpoint (or an HTTP
  -- consumer in its extend reply), and complete.lua / fail.lua end the run cancelled, as do
  -- the lease or timeout running out. Asking twice is asking once.
  if job.cancel_requested ~= '1' then event(job, 'cancel_requested', 0, nil) end
  redis.call('HSET', KEY_job, 'cancel_requested', '1')
  return {'cancel_requested'}
end
if not SOURCES[job.status] then return {'invalid_transition', job.status} end
if job.status == ST.pending then
  -- If a worker already moved the id into its list, start_ids drops it on seeing "cancelled".
  unqueue(job.queue, job.id, priority_of(job.priority))
elseif job.status == ST.waiting then
  -- Its parents keep its id in their dependents sets: settling skips a job no longer waiting.
  redis.call('ZREM', key_awaiting(job.queue), job.id)
else
  redis.call('ZREM', key_scheduled(job.queue), job.id)
end
local now = now_ms()
set_status(job, ST.cancelled, 'finished_at', now)
count('cancelled', job)
event(job, 'cancelled', now, nil)
expire_terminal(job, now, tonumber(ARGV[3]))
on_finished(job, ST.cancelled, now)
return {'ok'}
