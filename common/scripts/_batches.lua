-- Batches (common/batches.py): a batch hash key_batch(id) {id state created_at sealed_at
-- settled_at ttl_ms total done completed failed cancelled failed_ids on_complete on_success
-- (callback JSON: id type queue max_attempts timeout_ms) on_complete_payload on_success_payload
-- on_complete_job on_success_job, live_<status>: members in each status now, moved by every
-- script that moves a member (batch_move, _lib.lua)}, its members in the list
-- key_batch_jobs(id), each member's
-- hash carrying `batch` (the batch id) and `finish` = '1' (so the finish hook calls
-- settle_batch), and after it settled `batch_outcome` (its status as counted, exactly once).
--
-- States: open (members may be added) -> sealed (no more) -> settled (every member terminal,
-- the callbacks created). Members join in enqueue.lua's call, so a refused call writes nothing.
-- A batch settles in the script that ends its last member, or in batch_seal.lua when every
-- member had already ended; `state` turns to settled in that same script, so a resent script
-- (or the member ended again after an operator retry: batch_outcome) never settles it twice.

-- At most this many failed or cancelled member ids in the batch summary (common/batches.py).
local BATCH_FAILED_IDS_MAX = 100

-- enqueue.lua's batch arguments after the jobs (`base` is the index before them): batch id,
-- mode (create | add), most members, then for create: state (open | sealed), ttl ms after
-- settling, and per callback (on_complete, on_success) its JSON ('' none) and payload JSON.

-- The shard a callback's job is handed off to ('' is the default shard), or nil: created here.
-- `to` since batches live in any shard; `shard` (always a named one) in records made before.
local function callback_shard(meta)
  if meta.to ~= nil then return meta.to end
  return meta.shard
end

-- Registers a callback's queue and type with the call's new names (enqueue's own tables), so
-- the call's bounds (MAX_QUEUES, MAX_TYPES) judge them as a job's and its writes add them: the
-- callback job is created later, by whichever script settles the batch, with no check left.
local function batch_callback_names(meta, known_queue, known_type, new_queues, new_types)
  note_names(meta.queue, meta.type, known_queue, known_type, new_queues, new_types)
end

-- Before enqueue's first write: why the batch cannot take this call, or nil. A replayed entry
-- (an idempotency key or id that names an existing job) must already be a member of this
-- batch: a retried call adds nothing twice, and a job never joins a batch after the fact.
local function batch_refusal(base, ids, fresh, n, known_queue, known_type, new_queues, new_types)
  local bid, mode, most = ARGV[base + 1], ARGV[base + 2], tonumber(ARGV[base + 3])
  -- Keys holding something else (a hand edit) are no batch: refused before any write, so a
  -- WRONGTYPE error can never stop this call half-way.
  local kinds = {redis.call('TYPE', key_batch(bid)).ok, redis.call('TYPE', key_batch_jobs(bid)).ok}
  if (kinds[1] ~= 'hash' and kinds[1] ~= 'none') or (kinds[2] ~= 'list' and kinds[2] ~= 'none') then
    return {'batch_not_found', bid}
  end
  local v = redis.call('HMGET', key_batch(bid), 'state', 'total')
  local adding = 0
  for i = 1, n do
    if fresh[i] then
      adding = adding + 1
    elseif redis.call('HGET', key_job(ids[i]), 'batch') ~= bid then
      return {'not_in_batch', i, ids[i]}
    end
  end
  if mode == 'create' then
    if v[1] then
      -- The creating call sent again (the batch id comes from its Idempotency-Key).
      if adding > 0 then return {'batch_conflict', bid} end
      return nil
    end
    for c = 0, 1 do
      local meta = ARGV[base + 6 + c * 2]
      -- A callback for another shard's queue is registered there when it is handed off.
      if meta ~= '' and not callback_shard(cjson.decode(meta)) then
        batch_callback_names(cjson.decode(meta), known_queue, known_type, new_queues, new_types)
      end
    end
  elseif not v[1] then
    return {'batch_not_found', bid}
  elseif v[1] ~= 'open' then
    return {'batch_sealed', bid, v[1]}
  end
  if (tonumber(v[2]) or 0) + adding > most then return {'batch_too_large', bid, most} end
  return nil
end

-- Creates callback `which` (on_complete | on_success) as a pending job, its payload the
-- client's object with the batch summary first: spliced as text, so that cjson never decodes
-- (and rounds) the client's numbers. Its queue and type were registered when the batch was
-- created; capacity does not apply (the job is owed, as a retry is).
local function batch_spawn(key, bid, which, summary, now)
  local v = redis.call('HMGET', key, which, which .. '_payload')
  if not v[1] then return end
  local meta = cjson.decode(v[1])
  local rest = string.sub(v[2] or '{}', 2)
  if rest ~= '}' then rest = ',' .. rest end
  local id, queue = meta.id, meta.queue
  local target = callback_shard(meta)
  if target then
    -- A queue of another shard: owed through this shard's outbox, created there once under
    -- the id chosen at the batch's creation (common/outbox.py).
    owe_handoff(target, 'job', id, cjson.encode({type = meta.type, queue = queue,
      payload = '{"batch":' .. summary .. rest, max_attempts = tostring(meta.max_attempts),
      timeout_ms = tostring(meta.timeout_ms), handoff_from = which .. ' of batch ' .. bid}), now)
    redis.call('HSET', key, which .. '_job', id)
    return
  end
  redis.call('HSET', key_job(id), 'id', id, 'type', meta.type, 'queue', queue,
    'payload', '{"batch":' .. summary .. rest, 'attempts', 0,
    'max_attempts', meta.max_attempts, 'timeout_ms', meta.timeout_ms, 'created_at', now,
    'lease', 0, 'status', ST.pending, 'enqueued_at', now)
  redis.call('LPUSH', key_queue(queue), id)
  redis.call('ZADD', STATUS_KEY[ST.pending], now, id)
  redis.call('ZADD', JOBS_INDEX_KEY, now, id)
  redis.call('HINCRBY', KEY_stats, 'created|' .. queue .. '|' .. meta.type, 1)
  redis.call('HSET', key, which .. '_job', id)
  emit(id, 'created', ST.pending, queue, meta.type, 0, '', which .. ' of batch ' .. bid)
end

-- Settles batch `bid` when it is sealed and every member has ended: state settled, the
-- callbacks created (on_complete always, on_success when every member completed), the record
-- set to expire, and a few expired records' index entries dropped (bounded work).
local function batch_settle_if_done(bid, now)
  local key = key_batch(bid)
  local v = redis.call('HMGET', key, 'state', 'total', 'done', 'completed', 'failed',
    'cancelled', 'failed_ids', 'ttl_ms')
  if v[1] ~= 'sealed' or (tonumber(v[3]) or 0) < (tonumber(v[2]) or 0) then return false end
  redis.call('HSET', key, 'state', 'settled', 'settled_at', now)
  local failed_ids = ''
  for failed_id in string.gmatch(v[7] or '', '[^,]+') do
    if failed_ids ~= '' then failed_ids = failed_ids .. ',' end
    failed_ids = failed_ids .. '"' .. failed_id .. '"'
  end
  local summary = '{"id":"' .. bid .. '","total":' .. v[2] .. ',"completed":' .. v[4]
    .. ',"failed":' .. v[5] .. ',"cancelled":' .. v[6] .. ',"failed_ids":[' .. failed_ids .. ']}'
  -- The batch's own event: `job` is the batch id, `type` "batch" (common/events.py).
  emit(bid, 'batch_settled', 'settled', '', 'batch', 0, '',
    'completed=' .. v[4] .. ' failed=' .. v[5] .. ' cancelled=' .. v[6])
  batch_spawn(key, bid, 'on_complete', summary, now)
  if v[4] == v[2] then batch_spawn(key, bid, 'on_success', summary, now) end
  local ttl = tonumber(v[8]) or 86400000
  redis.call('PEXPIRE', key, ttl)
  redis.call('PEXPIRE', key_batch_jobs(bid), ttl)
  redis.call('ZADD', BATCH_EXPIRIES_KEY, now + ttl, bid)
  for _, due in ipairs(redis.call('ZRANGEBYSCORE', BATCH_EXPIRIES_KEY, '-inf', now,
      'LIMIT', 0, 10)) do
    if redis.call('EXISTS', key_batch(due)) == 0 then
      redis.call('ZREM', BATCH_EXPIRIES_KEY, due)
      redis.call('ZREM', BATCHES_KEY, due)
    end
  end
  return true
end

-- The finish hook's part (_finish.lua): a member reached terminal `status`; counted once.
local function settle_batch(job, status, now)
  local jkey = key_job(job.id)
  local v = redis.call('HMGET', jkey, 'batch', 'batch_outcome')
  if not v[1] or v[2] then return end
  redis.call('HSET', jkey, 'batch_outcome', status)
  local key = key_batch(v[1])
  -- Gone (expired), or something else by a hand edit: the member's own ending must go through.
  if redis.call('TYPE', key).ok ~= 'hash' then return end
  redis.call('HINCRBY', key, status, 1)
  redis.call('HINCRBY', key, 'done', 1)
  if status ~= ST.completed then
    local failed = redis.call('HMGET', key, 'failed', 'cancelled', 'failed_ids')
    if (tonumber(failed[1]) or 0) + (tonumber(failed[2]) or 0) <= BATCH_FAILED_IDS_MAX then
      local ids = failed[3]
      if ids and ids ~= '' then ids = ids .. ',' .. job.id else ids = job.id end
      redis.call('HSET', key, 'failed_ids', ids)
    end
  end
  batch_settle_if_done(v[1], now)
end

-- After enqueue's writes: the batch record (create), the new members and their marks. A member
-- created already ended (a dependent whose parent failed, _deps.lua) is counted here, once.
local function batch_record(base, ids, fresh, n, now, reply)
  local bid, mode = ARGV[base + 1], ARGV[base + 2]
  local key = key_batch(bid)
  if mode == 'create' and redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'id', bid, 'state', ARGV[base + 4], 'created_at', now,
      'ttl_ms', ARGV[base + 5], 'total', 0, 'done', 0, 'completed', 0, 'failed', 0,
      'cancelled', 0)
    if ARGV[base + 4] == 'sealed' then redis.call('HSET', key, 'sealed_at', now) end
    local names = {'on_complete', 'on_success'}
    for c = 0, 1 do
      if ARGV[base + 6 + c * 2] ~= '' then
        redis.call('HSET', key, names[c + 1], ARGV[base + 6 + c * 2],
          names[c + 1] .. '_payload', ARGV[base + 7 + c * 2])
      end
    end
    redis.call('ZADD', BATCHES_KEY, now, bid)
  end
  local members, live = {}, {}
  for i = 1, n do
    if fresh[i] then
      members[#members + 1] = ids[i]
      redis.call('HSET', key_job(ids[i]), 'batch', bid, 'finish', '1')
      tally(live, 'live_' .. reply[2 + (i - 1) * 3 + 2], 1)
    end
  end
  if #members > 0 then
    redis.call('RPUSH', key_batch_jobs(bid), unpack(members))
    redis.call('HINCRBY', key, 'total', #members)
    -- Each member's live count by its status (batch_move, _lib.lua, moves it from now on).
    flush_tally(key, live)
  end
  for i = 1, n do
    local status = reply[2 + (i - 1) * 3 + 2]
    if fresh[i] and (status == ST.cancelled or status == ST.failed or status == ST.completed) then
      settle_batch({id = ids[i]}, status, now)
    end
  end
end
