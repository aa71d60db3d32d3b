-- enqueue: create N jobs atomically, all or nothing -> pending (or scheduled when delayed).
-- KEYS[1] stats (routing)
-- ARGV[1] prefix  ARGV[2] capacity per queue  ARGV[3] idempotency ttl (s)  ARGV[4] N
-- then 9 per job: id, type, queue, payload JSON, max_attempts, timeout_ms,
--   delay_ms (-1: none), run_at_ms (-1: none), idempotency key ('' none)
-- Returns {"ok", now ms, id1, status1, created1, id2, ...} | {"queue_full", queue}
local capacity = tonumber(ARGV[2])
local idem_ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local now = now_ms()

local jobs, adding, seen_keys = {}, {}, {}
for i = 1, n do
  local b = 4 + (i - 1) * 9
  local job = {id = ARGV[b + 1], type = ARGV[b + 2], queue = ARGV[b + 3], payload = ARGV[b + 4],
    max_attempts = ARGV[b + 5], timeout_ms = ARGV[b + 6], delay_ms = tonumber(ARGV[b + 7]),
    run_at = tonumber(ARGV[b + 8]), idem = ARGV[b + 9], created = true}
  if job.idem ~= '' then
    -- A repeated key answers the original job (also within one batch), creating nothing.
    local original = seen_keys[job.idem]
    if not original then
      local stored = redis.call('GET', P .. 'idem:' .. job.idem)
      if stored and redis.call('EXISTS', P .. 'job:' .. stored) == 1 then original = stored end
    end
    if original then job.id, job.created = original, false end
  end
  if job.created and redis.call('EXISTS', P .. 'job:' .. job.id) == 1 then
    -- The same request sent again after a lost reply (a reconnect): it already took effect.
    job.created, job.replayed = false, true
  end
  if job.created then
    adding[job.queue] = (adding[job.queue] or 0) + 1
    if job.idem ~= '' then seen_keys[job.idem] = job.id end
  end
  jobs[i] = job
end

-- Capacity counts pending and scheduled jobs; checked for the whole batch before any write.
for queue, extra in pairs(adding) do
  local depth = redis.call('LLEN', P .. 'queue:' .. queue) + redis.call('ZCARD', P .. 'scheduled:' .. queue)
  if depth + extra > capacity then return {'queue_full', queue} end
end

-- Per job only its own hash (one HSET) and idempotency key; lists, indexes and counters are
-- written once per call with variadic commands.
local reply = {'ok', now}
local pushes, schedules, indexes, stats = {}, {}, {}, {}
local function append(t, name, ...)
  local list = t[name]
  if not list then list = {}; t[name] = list end
  for _, value in ipairs({...}) do list[#list + 1] = value end
end
for _, job in ipairs(jobs) do
  local status
  if job.created then
    local due = -1
    if job.delay_ms >= 0 then due = now + job.delay_ms end
    if job.run_at >= 0 then due = job.run_at end
    local key = P .. 'job:' .. job.id
    local timing
    if due > now then
      status, timing = ST.scheduled, 'run_at'
      append(schedules, job.queue, due, job.id)
    else
      status, timing, due = ST.pending, 'enqueued_at', now
      append(pushes, job.queue, job.id)
    end
    redis.call('HSET', key, 'id', job.id, 'type', job.type, 'queue', job.queue,
      'payload', job.payload, 'attempts', 0, 'max_attempts', job.max_attempts,
      'timeout_ms', job.timeout_ms, 'created_at', now, 'lease', 0, 'status', status,
      timing, due)
    if job.idem ~= '' then
      redis.call('HSET', key, 'idempotency_key', job.idem)
      redis.call('SET', P .. 'idem:' .. job.idem, job.id, 'EX', idem_ttl)
    end
    append(indexes, status, now, job.id)
    append(indexes, '', now, job.id)
    tally(stats, 'created|' .. job.queue .. '|' .. job.type, 1)
  else
    status = redis.call('HGET', P .. 'job:' .. job.id, 'status') or ST.pending
  end
  reply[#reply + 1] = job.id
  reply[#reply + 1] = status
  reply[#reply + 1] = (job.created or job.replayed) and 1 or 0
end
for queue, ids in pairs(pushes) do
  redis.call('LPUSH', P .. 'queue:' .. queue, unpack(ids))
  redis.call('SADD', P .. 'queues', queue)
end
for queue, pairs_ in pairs(schedules) do
  redis.call('ZADD', P .. 'scheduled:' .. queue, unpack(pairs_))
  redis.call('SADD', P .. 'queues', queue)
end
for status, pairs_ in pairs(indexes) do
  -- '' collects the all-jobs index.
  local index = status == '' and P .. 'jobs' or P .. 'status:' .. status
  redis.call('ZADD', index, unpack(pairs_))
end
flush_tally(P .. 'stats', stats)
return reply
