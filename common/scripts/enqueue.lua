-- enqueue: create N jobs atomically, all or nothing -> pending (or scheduled when delayed).
-- KEYS[1] stats  KEYS[2] queues  KEYS[3] jobs  KEYS[4..9] status:*  KEYS[10] expiring  (per job
-- and per queue, named by ARGV: key_job, key_idempotency, key_unique, key_queue, key_scheduled,
-- key_types)
-- ARGV[1] prefix  ARGV[2] capacity per queue  ARGV[3] idempotency ttl (s)  ARGV[4] max queues
-- ARGV[5] max (queue, type) pairs  ARGV[6] configured queues (comma list, always accepted)  ARGV[7] N
-- then 11 per job: id, type, queue, payload JSON, max_attempts, timeout_ms,
--   delay_ms (-1: none), run_at_ms (-1: none), idempotency key ('' none), request fingerprint
--   ('' none), options JSON ('' none: the common case) {u = unique key, t = its ttl ms, n = until
--   (started | finished | ttl), ea = expires_at ms, ei = expires_in ms, g = group}
-- Returns {"ok", now ms, id1, status1, created1, id2, ...} | {"queue_full", queue}
--   | {"too_many_queues", queue} | {"too_many_types", queue, type}
--   | {"idempotency_conflict", index (1-based), original id} | {"duplicate_job", index, holder id}
--
-- An idempotency key maps to "<id>:<fingerprint>"; the same key with another fingerprint is a
-- conflict (a bare "<id>", stored by older code, matches any). A unique lock holds
-- "<id>:<until>" and expires by itself (PX ttl); nothing deletes it. Whether its holder still
-- holds it is read from the holder job here (until started: not yet started; finished: not
-- terminal; ttl: always), so no script that ends a job needs to know about locks, no path that
-- ends one (recovery, reclaim, delete, a record expiring) can leak one, and only the holder's own
-- state can release it (fencing).
--
-- Every check comes before the first write, so a refusal writes nothing. That includes Redis
-- refusing a write under OOM (maxmemory + noeviction): it refuses a script's writes only until
-- its first write succeeded, so here it can only refuse the first, and nothing is half-written.
--
-- The hot path of every submission: per job only plain arrays and the job's own commands,
-- no per-job tables or closures (they cost Redis more than the commands at batch sizes).
local capacity = tonumber(ARGV[2])
local idem_ttl = tonumber(ARGV[3])
local max_queues, max_types = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = tonumber(ARGV[7])
local J, W = 7, 11  -- ARGV index before the first job's fields; fields per job
local now = now_ms()

-- Whether the job holding a unique lock still holds it, by its `until`.
local function holds(id, mode)
  if mode == 'ttl' then return true end
  local v = redis.call('HMGET', key_job(id), 'status', 'started_at')
  if not v[1] then return false end
  if mode == 'started' then return (v[1] == ST.pending or v[1] == ST.scheduled) and not v[2] end
  return v[1] ~= ST.completed and v[1] ~= ST.failed and v[1] ~= ST.cancelled
end

-- Pass 1, reads only: which jobs are new (ids[i], fresh[i]), how many each queue gains, and
-- which queue names and (queue, type) pairs are new (one SISMEMBER each per call).
local ids, fresh, replayed, options = {}, {}, {}, {}
local adding, seen_keys, seen_fingerprints, seen_unique = {}, {}, {}, {}
local known_queue, known_type = {}, {}  -- queue -> bool; queue -> {type -> bool}
local new_queues, new_types = {}, {}  -- {queue, ...}; queue -> {type, ...}
for i = 1, n do
  local b = J + (i - 1) * W
  local id, idem, fingerprint = ARGV[b + 1], ARGV[b + 9], ARGV[b + 10]
  local new = true
  if idem ~= '' then
    -- A repeated key answers the original job (also within one batch), creating nothing;
    -- the key reused for another request is refused.
    local original, original_fingerprint = seen_keys[idem], seen_fingerprints[idem]
    if not original then
      local stored = redis.call('GET', key_idempotency(idem))
      if stored then
        local stored_id, stored_fingerprint = string.match(stored, '^([^:]*):?(.*)$')
        if redis.call('EXISTS', key_job(stored_id)) == 1 then
          original, original_fingerprint = stored_id, stored_fingerprint
        end
      end
    end
    if original then
      local differs = fingerprint ~= original_fingerprint
      if differs and original_fingerprint ~= '' and fingerprint ~= '' then
        return {'idempotency_conflict', i, original}
      end
      id, new = original, false
    end
  end
  if new and redis.call('EXISTS', key_job(id)) == 1 then
    -- The same request sent again after a lost reply (a reconnect): it already took effect.
    new, replayed[i] = false, true
  end
  if new and ARGV[b + 11] ~= '' then
    local opts = cjson.decode(ARGV[b + 11])
    options[i] = opts
    if opts.u then
      local holder = seen_unique[opts.u]
      if not holder then
        local held = redis.call('GET', key_unique(opts.u))
        local held_id, mode = string.match(held or '', '^(%x+):(%a+)$')
        if held_id and holds(held_id, mode) then holder = held_id end
      end
      if holder then return {'duplicate_job', i, holder} end
      seen_unique[opts.u] = id
    end
  end
  if new then
    local queue, job_type = ARGV[b + 3], ARGV[b + 2]
    adding[queue] = (adding[queue] or 0) + 1
    if idem ~= '' then seen_keys[idem], seen_fingerprints[idem] = id, fingerprint end
    local types = known_type[queue]
    if not types then
      types = {}
      known_type[queue] = types
      known_queue[queue] = redis.call('SISMEMBER', KEY_queues, queue) == 1
      if not known_queue[queue] then new_queues[#new_queues + 1] = queue end
    end
    if types[job_type] == nil then
      types[job_type] = redis.call('SISMEMBER', key_types(queue), job_type) == 1
      if not types[job_type] then
        local list = new_types[queue] or {}
        new_types[queue] = list
        list[#list + 1] = job_type
      end
    end
  end
  ids[i], fresh[i] = id, new
end

-- Names are bounded so that the queues set, the stats hash and /metrics stay small whatever
-- names clients invent: MAX_QUEUES queue names (a configured queue is always accepted) and
-- MAX_TYPES (queue, type) pairs in all, since counters are kept per queue and type.
if #new_queues > 0 then
  local configured, unconfigured = {}, 0
  for name in string.gmatch(ARGV[6], '[^,]+') do configured[name] = true end
  for _, queue in ipairs(new_queues) do
    if not configured[queue] then
      unconfigured = unconfigured + 1
      if redis.call('SCARD', KEY_queues) + unconfigured > max_queues then
        return {'too_many_queues', queue}
      end
    end
  end
end
if next(new_types) then  -- a new pair is rare: count the pairs in use only then
  local pairs_in_use = 0
  for _, queue in ipairs(redis.call('SMEMBERS', KEY_queues)) do
    pairs_in_use = pairs_in_use + redis.call('SCARD', key_types(queue))
  end
  for queue, list in pairs(new_types) do
    pairs_in_use = pairs_in_use + #list
    if pairs_in_use > max_types then return {'too_many_types', queue, list[1]} end
  end
end

-- Capacity counts pending (queued, or parked at a group's cap) and scheduled jobs; checked for
-- the whole batch before any write.
for queue, extra in pairs(adding) do
  local depth = redis.call('LLEN', key_queue(queue)) + redis.call('ZCARD', key_scheduled(queue))
    + (tonumber(redis.call('HGET', key_groups(queue), PARKED)) or 0)
  if depth + extra > capacity then return {'queue_full', queue} end
end

-- Pass 2, writes: per job its own hash (one HSET) and idempotency key; lists, indexes and
-- counters once per call with variadic commands.
local reply = {'ok', now}
local pushes, schedules = {}, {}  -- queue -> ids | {score, id, ...}
local pending_index, scheduled_index, all_index = {}, {}, {}
local created = {}  -- 'created|queue|type' -> count
for i = 1, n do
  local b = J + (i - 1) * W
  local id = ids[i]
  local status
  if fresh[i] then
    local job_type, queue, idem = ARGV[b + 2], ARGV[b + 3], ARGV[b + 9]
    local delay_ms, due = tonumber(ARGV[b + 7]), tonumber(ARGV[b + 8])
    if delay_ms >= 0 and due < 0 then due = now + delay_ms end
    local timing
    if due > now then
      status, timing = ST.scheduled, 'run_at'
      local list = schedules[queue]
      if not list then list = {}; schedules[queue] = list end
      list[#list + 1] = due
      list[#list + 1] = id
      scheduled_index[#scheduled_index + 1] = now
      scheduled_index[#scheduled_index + 1] = id
    else
      status, timing, due = ST.pending, 'enqueued_at', now
      local list = pushes[queue]
      if not list then list = {}; pushes[queue] = list end
      list[#list + 1] = id
      pending_index[#pending_index + 1] = now
      pending_index[#pending_index + 1] = id
    end
    local key = key_job(id)
    redis.call('HSET', key, 'id', id, 'type', job_type, 'queue', queue,
      'payload', ARGV[b + 4], 'attempts', 0, 'max_attempts', ARGV[b + 5],
      'timeout_ms', ARGV[b + 6], 'created_at', now, 'lease', 0, 'status', status,
      timing, due)
    if idem ~= '' then
      redis.call('HSET', key, 'idempotency_key', idem)
      local fingerprint = ARGV[b + 10]
      local value = id
      if fingerprint ~= '' then value = id .. ':' .. fingerprint end
      redis.call('SET', key_idempotency(idem), value, 'EX', idem_ttl)
    end
    local opts = options[i]
    if opts then
      if opts.u then
        redis.call('HSET', key, 'unique_key', opts.u)
        redis.call('SET', key_unique(opts.u), id .. ':' .. opts.n, 'PX', opts.t)
      end
      if opts.g then redis.call('HSET', key, 'group', opts.g) end
      local expires = opts.ea or (opts.ei and now + opts.ei)
      if expires then
        redis.call('HSET', key, 'expires_at', expires)
        redis.call('ZADD', KEY_expiring, expires, id)
      end
    end
    all_index[#all_index + 1] = now
    all_index[#all_index + 1] = id
    local field = 'created|' .. queue .. '|' .. job_type
    created[field] = (created[field] or 0) + 1
  else
    status = redis.call('HGET', key_job(id), 'status') or ST.pending
  end
  local r = #reply
  reply[r + 1] = id
  reply[r + 2] = status
  reply[r + 3] = (fresh[i] or replayed[i]) and 1 or 0
end
for queue, list in pairs(pushes) do
  redis.call('LPUSH', key_queue(queue), unpack(list))
end
for queue, list in pairs(schedules) do
  redis.call('ZADD', key_scheduled(queue), unpack(list))
end
if #new_queues > 0 then redis.call('SADD', KEY_queues, unpack(new_queues)) end
for queue, list in pairs(new_types) do
  redis.call('SADD', key_types(queue), unpack(list))
end
if #pending_index > 0 then redis.call('ZADD', STATUS_KEY[ST.pending], unpack(pending_index)) end
if #scheduled_index > 0 then
  redis.call('ZADD', STATUS_KEY[ST.scheduled], unpack(scheduled_index))
end
if #all_index > 0 then redis.call('ZADD', KEY_jobs, unpack(all_index)) end
flush_tally(KEY_stats, created)
return reply
