-- expire: pending | scheduled | waiting -> cancelled (error "expired") for jobs whose expires_at passed
-- before they started, oldest first, at most N per call. A claim cancels those it meets
-- (start_ids), so none runs late; this cancels the rest (a paused queue, no worker, a job still
-- scheduled) and gives the records a claim cancelled their result TTL.
-- KEYS[1] expiring  KEYS[2] stats  KEYS[3] expiries  KEYS[4..10] status:*  KEYS[11] jobs  (job hashes, queue
-- lists, scheduled sets: key_<name>)
-- ARGV[1] prefix  ARGV[2] most ids per call  ARGV[3] result ttl (ms)
-- Returns the number of due entries handled (a full batch: call again)
--
-- "Started" is an attempt begun and counted: a retry (attempts > 0) is past its expiry's reach,
-- while a job handed back at shutdown (release gives the attempt back) is not.
local now, ttl_ms = now_ms(), tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEY_expiring, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEY_expiring, id)
  local job = load(id)
  if job and SOURCES[job.status] and job.attempts == 0 then
    if job.status == ST.pending then
      -- An id a worker already moved with BLMOVE is dropped by start_ids on seeing "cancelled".
      unqueue(job.queue, id, priority_of(job.priority))
    elseif job.status == ST.waiting then
      redis.call('ZREM', key_awaiting(job.queue), id)
    else
      redis.call('ZREM', key_scheduled(job.queue), id)
    end
    set_status(job, ST.cancelled, 'error', 'expired', 'finished_at', now) -- jobs.EXPIRED_ERROR
    count('cancelled', job)
    event(job, 'expired', now, 'expired')
    expire_terminal(job, now, ttl_ms)
    on_finished(job, ST.cancelled, now)
  elseif job and job.status == ST.cancelled and redis.call('PTTL', key_job(id)) == -1 then
    expire_terminal(job, now, ttl_ms) -- cancelled by a claim, which has no result TTL to give
  end
end
return #due
