-- recover: a dead worker's processing list, whole. A started job used up its attempt (so a job
-- that kills its worker ends failed instead of looping); one taken but never started did not.
-- KEYS[1] processing:<dead worker>
-- ARGV[1] prefix  ARGV[2] dead worker id  ARGV[3] dead-letter cap
-- Returns {requeued, failed}
local worker = ARGV[2]
local now = now_ms()
local requeued, failed = 0, 0
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local job = load(id)
  if job and job.status == ST.processing and job.worker == worker then
    leave_processing(job)
    if job.attempts < job.max_attempts then
      count('recovered', job)
      to_pending(job, now, true, 'error', 'worker ' .. worker .. ' died while running the job')
      requeued = requeued + 1
    else
      to_failed(job, now, 'worker ' .. worker .. ' died while running the job (last attempt)',
        tonumber(ARGV[3]))
      failed = failed + 1
    end
  elseif job and job.status == ST.pending then
    redis.call('RPUSH', P .. 'queue:' .. job.queue, id)
    requeued = requeued + 1
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', P .. 'workers', worker)
redis.call('DEL', P .. 'worker:' .. worker)
return {requeued, failed}
