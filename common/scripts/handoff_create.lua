-- handoff_create: the target half of a hand-off (common/outbox.py): creates the pending job
-- another shard owes (a schedule's run, a batch's callback), once however often it is sent.
-- KEYS[1] handoff:<job_id>  KEYS[2] stats  KEYS[3] queues  KEYS[4] jobs  KEYS[5..11] status:*
-- ARGV[1] prefix  ARGV[2] job id (the hand-off's key)  ARGV[3] body: a JSON object of the
-- job's string fields (type, queue, payload, max_attempts, timeout_ms, and any others to keep;
-- `handoff_from`, the event's detail, is not stored)
-- ARGV[4] how long the done mark is kept (ms)
-- Returns {"ok", id, "created" | "done"}: both write (the done mark), so with
-- DURABILITY=replicated the mover's WAIT after a repeat also covers the first call's job.
--
-- The mover may die after this ran and before it removed its outbox entry: the next mover sends
-- it again and finds the mark (or the job itself), so the job is created once. The job is owed
-- work, like a retry: no capacity or name bounds refuse it (the queue and type are registered).
local id = ARGV[2]
if redis.call('EXISTS', KEY_handoff) == 1 or redis.call('EXISTS', key_job(id)) == 1 then
  redis.call('SET', KEY_handoff, id, 'PX', ARGV[4])
  return {'ok', id, 'done'}
end
local body = cjson.decode(ARGV[3])
local now = now_ms()
local job_type, queue = body.type, body.queue
-- A key holding something else (a hand edit) would fail a write half-way, and Redis keeps the
-- writes before it: refuse before any write, so the entry stays owed and is sent again later.
for key, want in pairs({[key_queue(queue)] = 'list', [key_types(queue)] = 'set'}) do
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= want then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. found)
  end
end
local args = {}
for name, value in pairs(body) do
  if type(value) == 'string' and name ~= 'handoff_from' then
    args[#args + 1] = name
    args[#args + 1] = value
  end
end
redis.call('HSET', key_job(id), unpack(args))
redis.call('HSET', key_job(id), 'id', id, 'attempts', 0, 'created_at', now, 'lease', 0,
  'status', ST.pending, 'enqueued_at', now)
redis.call('SADD', KEY_queues, queue)
redis.call('SADD', key_types(queue), job_type)
push_pending(queue, id, priority_of(body.priority), false)  -- a schedule's run may carry one
redis.call('ZADD', STATUS_KEY[ST.pending], now, id)
redis.call('ZADD', KEY_jobs, now, id)
redis.call('HINCRBY', KEY_stats, 'created|' .. queue .. '|' .. job_type, 1)
redis.call('SET', KEY_handoff, id, 'PX', ARGV[4])
emit(id, 'created', ST.pending, queue, job_type, 0, '', body.handoff_from or '')
return {'ok', id, 'created'}
