-- fail: processing -> scheduled (retry after backoff) | pending (no backoff) | failed (dead).
-- KEYS[1] job:<job_id>  KEYS[2] stats  KEYS[3] inflight  KEYS[4] deadlines  KEYS[5] jobs
-- KEYS[6] expiries  KEYS[7..13] status:*  (lists of the job's queue and worker: key_<name>)
-- ARGV[1] prefix  ARGV[2] job id  ARGV[3] lease  ARGV[4] error text  ARGV[5] permanent (0|1)
-- ARGV[6] backoff base ms  ARGV[7] backoff cap ms  ARGV[8] jitter fraction [0,1)
-- ARGV[9] dead-letter cap  ARGV[10] calling worker id  ARGV[11] traceback ('' or absent: none)
-- ARGV[12] outcome for the attempt history: failed | timed_out | cancelled (absent: failed)
-- ARGV[13] result ttl (ms) for a run that ends cancelled (absent: 24 h, RESULT_TTL's default)
-- ARGV[14] retry delay ms asked by the attempt (a Retry-After), used instead of the backoff
--   ('' or absent: the backoff)
-- Returns {"ok", new status, delay ms} | {"stale_lease", status} | {"not_found"}
-- A run whose cancel was requested (cancel.lua) or that stopped on it (outcome cancelled) ends
-- cancelled, whatever its error: no retry.
local id, lease, err, worker = ARGV[2], ARGV[3], ARGV[4], ARGV[10]
local job = load(id)
if not job then
  redis.call('LREM', key_processing(worker), 1, id)
  return {'not_found'}
end
if not SOURCES[job.status] and job.lease == lease then
  -- This very call, sent again after a lost reply: an attempt ended by anyone else (recover,
  -- reclaim, release) got a new lease number (revoke_lease), so it cannot match here.
  return {'ok', job.status, 0}
end
if not SOURCES[job.status] or job.lease ~= lease then
  redis.call('HINCRBY', KEY_stats, 'stale_completions', 1)
  redis.call('LREM', key_processing(worker), 1, id)
  return {'stale_lease', job.status}
end
local now = now_ms()
local outcome = ARGV[12] or 'failed'
if redis.call('HGET', KEY_job, 'cancel_requested') == '1' then outcome = 'cancelled' end
add_history(job, now, outcome, err, ARGV[11] or '')
leave_processing(job)
observe('run', job.queue, now - (tonumber(job.started_at) or now))
if outcome == 'cancelled' then
  set_status(job, ST.cancelled, 'error', err, 'finished_at', now)
  count('cancelled', job)
  event(job, 'cancelled', now, err)
  expire_terminal(job, now, tonumber(ARGV[13]) or 86400000)
  on_finished(job, ST.cancelled, now)
  return {'ok', ST.cancelled, 0}
end
local delay = tonumber(ARGV[14] or '')
if not delay then
  delay = backoff_ms(job.attempts, tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
end
local status = retry_or_bury(job, now, err, ARGV[5] == '1', delay, tonumber(ARGV[9]))
event(job, status == 'failed' and 'failed' or 'retrying', now, err)
if status == ST.failed then on_finished(job, ST.failed, now) end
return {'ok', status, delay}
