-- retry: failed -> pending, by an operator; attempts start again from zero. The dependents
-- (depends_on) its failure cancelled, and theirs, wait again (revive_dependents).
-- KEYS[1] job:<job_id>  KEYS[2..8] status:*  (the job's queue and dead letters: key_<name>)
-- ARGV[1] prefix  ARGV[2] job id
-- Returns {"ok"} | {"invalid_transition", status} | {"not_found"}
local job = load(ARGV[2])
if not job then return {'not_found'} end
if not SOURCES[job.status] then return {'invalid_transition', job.status} end
redis.call('ZREM', key_dead(job.queue), job.id)
redis.call('HDEL', KEY_job, 'finished_at', 'started_at', 'result')
local now = now_ms()
to_pending(job, now, false, 'attempts', 0, 'error', '')
job.attempts = 0
event(job, 'retried', 0, nil)
-- The dependents its failure cancelled wait for it again (_deps.lua).
revive_dependents(job, now)
return {'ok'}
