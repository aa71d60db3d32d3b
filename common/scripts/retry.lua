-- retry: failed -> pending, by an operator; attempts start again from zero.
-- KEYS[1] job hash
-- ARGV[1] prefix  ARGV[2] job id
-- Returns {"ok"} | {"invalid_transition", status} | {"not_found"}
local job = load(ARGV[2])
if not job then return {'not_found'} end
if job.status ~= ST.failed then return {'invalid_transition', job.status} end
redis.call('ZREM', P .. 'dead:' .. job.queue, job.id)
redis.call('HDEL', P .. 'job:' .. job.id, 'finished_at', 'started_at', 'result')
to_pending(job, now_ms(), false, 'attempts', 0, 'error', '')
return {'ok'}
