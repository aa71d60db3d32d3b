-- schedule_fire: enqueue a schedule's due run exactly once and advance it (compare-and-set).
-- KEYS[1] schedules_due  KEYS[2] stats  KEYS[3] queues  KEYS[4] jobs  KEYS[5..11] status:*
-- (the schedule's hash: key_schedule(ARGV[2]); the job's keys by key_job, key_queue, ...)
-- ARGV[1] prefix  ARGV[2] schedule id  ARGV[3] revision read  ARGV[4] due run (ms) read
-- ARGV[5] next run (ms), computed in Python  ARGV[6] 1: enqueue this run | 0: skip it
-- ARGV[7] job id (derived from the schedule and the due run)  ARGV[8] type  ARGV[9] queue
-- ARGV[10] payload JSON  ARGV[11] max attempts  ARGV[12] timeout ms  ARGV[13] capacity
-- ARGV[14] max queues  ARGV[15] max (queue, type) pairs  ARGV[16] configured queues (comma list)
-- ARGV[17] the queue's shard when it is not this one ('' here) ARGV[18] the job's hand-off body
-- ARGV[19] the job's priority (0-9; absent: 0)
-- Returns {"fired", job id} | {"skipped"} | {"stale"}
--   | {"queue_full", queue} | {"too_many_queues", queue} | {"too_many_types", queue, type}
--
-- Any number of firers may call this for the same run: only the one that still finds the
-- revision and the due time it read advances the schedule, and the job id is derived from the
-- run, so a repeat is a no-op. A refused enqueue advances nothing: the run stays due and is
-- tried again on the next tick, late but never lost or doubled.
-- A queue in another shard (QUEUE_SHARDS) gets its run through this shard's outbox
-- (_outbox.lua), keyed on the run's job id, in the same call that advances the schedule: the
-- mover creates it there once (common/outbox.py). That shard's bounds are not checked here.
local key = key_schedule(ARGV[2])
local id, job_type, queue = ARGV[7], ARGV[8], ARGV[9]
local state = redis.call('HMGET', key, 'revision', 'next_run_at', 'paused')
if state[1] ~= ARGV[3] or state[2] ~= ARGV[4] or state[3] ~= '0' then return {'stale'} end
local now = now_ms()
if ARGV[6] == '1' and (ARGV[17] or '') ~= '' then  -- absent (16 ARGV): this shard
  owe_handoff(ARGV[17], 'job', id, ARGV[18], now)
elseif ARGV[6] == '1' and redis.call('EXISTS', key_job(id)) == 0 then
  -- The checks enqueue.lua makes, before any write.
  local depth = pending_depth(queue) + redis.call('ZCARD', key_scheduled(queue))
  if depth >= tonumber(ARGV[13]) then return {'queue_full', queue} end
  local new_queue = redis.call('SISMEMBER', KEY_queues, queue) == 0
  if new_queue then
    local configured = false
    for name in string.gmatch(ARGV[16], '[^,]+') do configured = configured or name == queue end
    if not configured and redis.call('SCARD', KEY_queues) >= tonumber(ARGV[14]) then
      return {'too_many_queues', queue}
    end
  end
  if redis.call('SISMEMBER', key_types(queue), job_type) == 0 then
    local pairs_in_use = 0
    for _, name in ipairs(redis.call('SMEMBERS', KEY_queues)) do
      pairs_in_use = pairs_in_use + redis.call('SCARD', key_types(name))
    end
    if pairs_in_use >= tonumber(ARGV[15]) then return {'too_many_types', queue, job_type} end
    redis.call('SADD', key_types(queue), job_type)
  end
  if new_queue then redis.call('SADD', KEY_queues, queue) end
  redis.call('HSET', key_job(id), 'id', id, 'type', job_type, 'queue', queue,
    'payload', ARGV[10], 'attempts', 0, 'max_attempts', ARGV[11], 'timeout_ms', ARGV[12],
    'created_at', now, 'lease', 0, 'status', ST.pending, 'enqueued_at', now,
    'schedule_id', ARGV[2], 'scheduled_for', ARGV[4])
  local priority = priority_of(ARGV[19])
  if priority > 0 then redis.call('HSET', key_job(id), 'priority', priority) end
  push_pending(queue, id, priority, false)
  redis.call('ZADD', STATUS_KEY[ST.pending], now, id)
  redis.call('ZADD', KEY_jobs, now, id)
  redis.call('HINCRBY', KEY_stats, 'created|' .. queue .. '|' .. job_type, 1)
  emit(id, 'created', ST.pending, queue, job_type, 0, '', '')
end
redis.call('HSET', key, 'next_run_at', ARGV[5])
redis.call('ZADD', KEY_schedules_due, ARGV[5], ARGV[2])
if ARGV[6] == '1' then
  redis.call('HSET', key, 'last_run_at', ARGV[4], 'last_job_id', id, 'fired_at', now)
  redis.call('HINCRBY', key, 'runs', 1)
  return {'fired', id}
end
redis.call('HINCRBY', key, 'skipped', 1)
return {'skipped'}
