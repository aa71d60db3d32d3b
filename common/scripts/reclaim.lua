-- reclaim: a job running past its deadline plus a margin in a worker that failed to stop it
-- (the worker enforces timeouts itself first, so a healthy job is never reclaimed). It counts
-- as a failed attempt (outcome "lost" in its history); a late result from the old holder is
-- rejected by the lease check. An HTTP consumer's lease (lease.lua, extend.lua) sets the
-- deadline to its expiry less the margin, so such a job comes back as soon as its lease ends.
-- KEYS[1] deadlines  KEYS[2] stats  KEYS[3] inflight  KEYS[4] jobs  KEYS[5] expiries
-- KEYS[6..12] status:*  (job hashes and their lists: key_<name>)
-- ARGV[1] prefix  ARGV[2] margin ms  ARGV[3] most jobs per call  ARGV[4] backoff base ms
-- ARGV[5] backoff cap ms  ARGV[6] jitter fraction [0,1)  ARGV[7] dead-letter cap
-- ARGV[8] result ttl (ms), for a job whose cancel was requested: it ends cancelled
-- Returns the number of jobs reclaimed
local now = now_ms()
local overdue = redis.call('ZRANGEBYSCORE', KEY_deadlines, '-inf', now - tonumber(ARGV[2]),
  'LIMIT', 0, tonumber(ARGV[3]))
local reclaimed = 0
for i, id in ipairs(overdue) do
  local job = load(id)
  if job and SOURCES[job.status] then
    local err = 'timed out: still running past its deadline (reclaimed)'
    -- An HTTP consumer's job (worker http:<name>, see common/leases.py) has the lease as its
    -- deadline: say so, the operator reading the history has no timeout to look for.
    if job.worker and string.sub(job.worker, 1, 5) == 'http:' then
      err = 'lease expired: no answer from consumer ' .. string.sub(job.worker, 6)
    end
    add_history(job, now, 'lost', err, '')
    leave_processing(job)
    revoke_lease(job)
    if job.cancel_requested == '1' then
      to_cancelled(job, now, err, tonumber(ARGV[8]))
      on_finished(job, ST.cancelled, now)
    else
      local fraction = (tonumber(ARGV[6]) + i * 0.6180339887) % 1
      local delay = backoff_ms(job.attempts, tonumber(ARGV[4]), tonumber(ARGV[5]), fraction)
      if retry_or_bury(job, now, err, false, delay, tonumber(ARGV[7])) == ST.failed then
        on_finished(job, ST.failed, now)
      end
    end
    event(job, 'reclaimed', now, err)
    reclaimed = reclaimed + 1
  else
    redis.call('ZREM', KEY_deadlines, id)
  end
end
return reclaimed
