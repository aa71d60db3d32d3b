-- recover: a dead worker's processing list, whole. Every job it had started comes back marked
-- suspect, so from now on it runs alone (see _claim.lua). Who is to blame for the death decides
-- the attempt: a job that ran alone used it up (so a job that kills its worker ends failed
-- instead of looping); jobs that ran side by side get it back, since any one of them (or none)
-- may have killed the worker and the next run, alone, will tell. A job taken but never started
-- did not use an attempt either.
-- KEYS[1] processing:<worker_id>  KEYS[2] workers  KEYS[3] worker:<worker_id>  KEYS[4] stats
-- KEYS[5] inflight  KEYS[6] deadlines  KEYS[7] jobs  KEYS[8] expiries  KEYS[9..15] status:*
-- (job hashes and their queues: key_<name>)
-- ARGV[1] prefix  ARGV[2] dead worker id  ARGV[3] dead-letter cap
-- ARGV[4] result ttl (ms), for a job whose cancel was requested: it ends cancelled
-- Returns {requeued, failed} (a job that ends cancelled is neither)
local worker = ARGV[2]
local now = now_ms()
local requeued, failed = 0, 0
local started, waiting = {}, {}
for _, id in ipairs(redis.call('LRANGE', KEY_processing, 0, -1)) do
  local job = load(id)
  if job and job.status == ST.processing and job.worker == worker then
    started[#started + 1] = job
  elseif job and job.status == ST.pending then
    waiting[#waiting + 1] = job
  elseif id == WAKE then
    rewake(KEY_worker)
  end
end
local err = 'worker ' .. worker .. ' died while running the job'
local blamed = #started == 1
for _, job in ipairs(started) do
  -- The history keeps the attempt number the job ran as, even when it is given back.
  add_history(job, now, 'lost', err, '')
  leave_processing(job)
  revoke_lease(job)
  if not blamed then job.attempts = job.attempts - 1 end
  if job.cancel_requested == '1' then
    to_cancelled(job, now, err, tonumber(ARGV[4]))
    on_finished(job, ST.cancelled, now)
  elseif job.attempts < job.max_attempts then
    count('recovered', job)
    to_pending(job, now, true, 'error', err, 'attempts', job.attempts, 'suspect', 1)
    requeued = requeued + 1
  else
    to_failed(job, now, err .. ' alone (last attempt)', tonumber(ARGV[3]))
    -- Still suspect should an operator retry it: it runs alone then too.
    redis.call('HSET', key_job(job.id), 'suspect', 1)
    on_finished(job, ST.failed, now)
    failed = failed + 1
  end
  event(job, 'recovered', now, err)
end
for _, job in ipairs(waiting) do
  push_pending(job.queue, job.id, priority_of(job.priority), true)
  requeued = requeued + 1
end
redis.call('DEL', KEY_processing)
redis.call('ZREM', KEY_workers, worker)
redis.call('DEL', KEY_worker)
return {requeued, failed}
