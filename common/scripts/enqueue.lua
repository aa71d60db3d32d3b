-- enqueue: create N jobs atomically, all or nothing -> pending (or scheduled when delayed,
-- waiting for parents with depends_on, cancelled at once when a parent already failed).
-- KEYS[1] stats  KEYS[2] queues  KEYS[3] jobs  KEYS[4..10] status:*  KEYS[11] expiring  (per job
-- and per queue, named by ARGV: key_job, key_idempotency, key_unique, key_queue, key_scheduled,
-- key_types)
-- ARGV[1] prefix  ARGV[2] capacity per queue  ARGV[3] idempotency ttl (s)  ARGV[4] max queues
-- ARGV[5] max (queue, type) pairs  ARGV[6] configured queues (comma list, always accepted)  ARGV[7] N
-- then 11 per job: id, type, queue, payload JSON, max_attempts, timeout_ms,
--   delay_ms (-1: none), run_at_ms (-1: none), idempotency key ('' none), request fingerprint
--   ('' none), options JSON ('' none: the common case) {u = unique key, t = its ttl ms, n = until
--   (started | finished | ttl), ea = expires_at ms, ei = expires_in ms, g = group,
--   p = priority 1-9 (0 is never sent: the list, as without one), ci = 1 when the id is the
--   client's own with fp = its request fingerprint, d = parent ids (depends_on, parents in this
--   call come before their children), pf = 'run' (on_parent_failure; absent: cancel), rt =
--   result ttl ms (for a job created cancelled because a parent already failed), cb =
--   callback_url with ca = its attempts and ct = its timeout ms (_callbacks.lua)}
-- then, for a batch's call only (_batches.lua): batch id, mode (create | add), most members,
--   state (open | sealed), ttl ms, on_complete JSON, its payload, on_success JSON, its payload
-- Returns {"ok", now ms, id1, status1, created1, id2, ...} | {"queue_full", queue}
--   | {"too_many_queues", queue} | {"too_many_types", queue, type}
--   | {"idempotency_conflict", index (1-based), original id} | {"duplicate_job", index, holder id}
--   | {"batch_not_found", id} | {"batch_sealed", id, state} | {"batch_too_large", id, most}
--   | {"batch_conflict", id} | {"not_in_batch", index, job id}
--   | {"id_conflict", index, id} (a client's id taken by another request)
--   | {"unknown_parents", index of the first, id, ...} (depends_on naming no job; at most 20)
--   | {"too_many_dependents", index, parent id} (the parent would pass MAX_DEPENDENTS children)
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

-- An idempotency key's value, "<id>:<32 hex digits of the request's fingerprint>".
local STORED_KEY = '^(.*):(' .. string.rep('%x', 32) .. ')$'

-- Whether the job holding a unique lock still holds it, by its `until`.
local function holds(id, mode)
  if mode == 'ttl' then return true end
  local v = redis.call('HMGET', key_job(id), 'status', 'started_at')
  if not v[1] then return false end
  if mode == 'started' then
    return (v[1] == ST.pending or v[1] == ST.scheduled or v[1] == ST.waiting) and not v[2]
  end
  return v[1] ~= ST.completed and v[1] ~= ST.failed and v[1] ~= ST.cancelled
end

-- Pass 1, reads only: which jobs are new (ids[i], fresh[i]), how many each queue gains, and
-- which queue names and (queue, type) pairs are new (one SISMEMBER each per call).
local ids, fresh, replayed, options = {}, {}, {}, {}
local submitted, unknown, unknown_at = {}, {}, nil  -- ids of this call; unknown parents
local children_of = {}  -- parent -> its children, counting this call's
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
        -- The fingerprint is the last 32 hex digits: a client's own id may hold ':' itself.
        local stored_id, stored_fingerprint = string.match(stored, STORED_KEY)
        if not stored_id then stored_id, stored_fingerprint = stored, '' end
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
    if ARGV[b + 11] ~= '' and cjson.decode(ARGV[b + 11]).ci then
      -- A client's own id: the same request again is a replay (answered as the original), any
      -- other request naming it a conflict. Refused before any write.
      local fp = cjson.decode(ARGV[b + 11]).fp
      if redis.call('HGET', key_job(id), 'fingerprint') ~= fp then return {'id_conflict', i, id} end
      new = false
    else
      -- The same request sent again after a lost reply (a reconnect): it already took effect.
      new, replayed[i] = false, true
    end
  end
  if new and ARGV[b + 11] ~= '' then
    local opts = cjson.decode(ARGV[b + 11])
    options[i] = opts
    if opts.u then
      local holder = seen_unique[opts.u]
      if not holder then
        local held = redis.call('GET', key_unique(opts.u))
        local held_id, mode = string.match(held or '', '^(.+):(%a+)$')  -- ids may hold ':'
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
    note_names(queue, job_type, known_queue, known_type, new_queues, new_types)
  end
  ids[i], fresh[i] = id, new
  submitted[id] = true
  local parents = new and options[i] and options[i].d
  if parents then  -- each must be a job, or one of this call (its parents come before it)
    local remote = options[i].r or {}
    for _, parent in ipairs(parents) do
      local had = children_of[parent]
      if remote[parent] then
        had = nil  -- in another shard: the API found it there (common/shards.py)
      elseif not had and not submitted[parent] then
        local v = redis.call('HMGET', key_job(parent), 'status', 'children_count')
        if v[1] then
          had = tonumber(v[2]) or 0
        elseif #unknown < 20 then
          unknown[#unknown + 1] = parent
          unknown_at = unknown_at or i
        end
      end
      if had or (submitted[parent] and not remote[parent]) then
        -- A parent's children are bounded, so the script that ends it does bounded work.
        had = (had or 0) + 1
        children_of[parent] = had
        if had > MAX_DEPENDENTS then return {'too_many_dependents', i, parent} end
      end
    end
  end
end
if unknown_at then return {'unknown_parents', unknown_at, unpack(unknown, 1, 20)} end

-- A batch's members join in this call (_batches.lua): ARGV after the jobs names the batch.
local batch_base = J + n * W
local batch = ARGV[batch_base + 1]
if batch then
  local refused = batch_refusal(batch_base, ids, fresh, n, known_queue, known_type, new_queues,
    new_types)
  if refused then return refused end
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
  local depth = pending_depth(queue) + redis.call('ZCARD', key_scheduled(queue))
    + (tonumber(redis.call('HGET', key_groups(queue), PARKED)) or 0)
    + redis.call('ZCARD', key_awaiting(queue))  -- waiting for parents: pending when released
  if depth + extra > capacity then return {'queue_full', queue} end
end

-- Pass 2, writes: per job its own hash (one HSET) and idempotency key; lists, indexes and
-- counters once per call with variadic commands.
local reply = {'ok', now}
local pushes, schedules = {}, {}  -- queue -> ids | {score, id, ...}
local prioritized = {}  -- indexes of pending jobs with a priority (1-9)
local pending_index, scheduled_index, all_index = {}, {}, {}
local waiting_index, ended_index = {}, {}  -- created waiting; created cancelled (parent failed)
local planned, children, parent_order = {}, {}, {}  -- id -> status; parent -> child ids
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
    local deps = options[i]
    local parents = deps and deps.d
    local left, failed_parent = 0, nil  -- parents not yet ended; a parent that already failed
    local remote = deps and deps.r or {}
    if parents then
      for _, parent in ipairs(parents) do
        local ended = not remote[parent]
          and (planned[parent] or redis.call('HGET', key_job(parent), 'status'))
        if ended == ST.failed or ended == ST.cancelled then
          if deps.pf ~= 'run' then failed_parent = failed_parent or parent end
        elseif ended ~= ST.completed then
          left = left + 1
        end
      end
    end
    if failed_parent then  -- on_parent_failure = cancel, applied at once (validation: no delay)
      status, timing, due = ST.cancelled, 'finished_at', now
      ended_index[#ended_index + 1] = now
      ended_index[#ended_index + 1] = id
    elseif left > 0 then
      status, timing, due = ST.waiting, 'created_at', now
      waiting_index[#waiting_index + 1] = now
      waiting_index[#waiting_index + 1] = id
    elseif due > now then
      status, timing = ST.scheduled, 'run_at'
      local list = schedules[queue]
      if not list then list = {}; schedules[queue] = list end
      list[#list + 1] = due
      list[#list + 1] = id
      scheduled_index[#scheduled_index + 1] = now
      scheduled_index[#scheduled_index + 1] = id
    else
      status, timing, due = ST.pending, 'enqueued_at', now
      local opts = options[i]
      if opts and opts.p then
        prioritized[#prioritized + 1] = i  -- into the queue's priority ZSET, after the hash
      else
        local list = pushes[queue]
        if not list then list = {}; pushes[queue] = list end
        list[#list + 1] = id
      end
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
      if opts.ci then  -- a client's own id, maybe of a record that expired: its old entries go
        redis.call('HSET', key, 'fingerprint', opts.fp)
        for _, index in pairs(STATUS_KEY) do redis.call('ZREM', index, id) end
        redis.call('ZREM', EXPIRIES_KEY, id)
      end
      if opts.p then redis.call('HSET', key, 'priority', opts.p) end
      if opts.cb then  -- owed a callback when it ends (_callbacks.lua, via _finish.lua)
        redis.call('HSET', key, 'callback_url', opts.cb, 'callback_max_attempts', opts.ca,
          'callback_timeout_ms', opts.ct, 'finish', '1')
      end
      local expires = opts.ea or (opts.ei and now + opts.ei)
      if expires then
        redis.call('HSET', key, 'expires_at', expires)
        redis.call('ZADD', KEY_expiring, expires, id)
      end
    end
    if parents then
      redis.call('HSET', key, 'depends_on', cjson.encode(parents),
        'on_parent_failure', deps.pf or 'cancel')
      for _, parent in ipairs(parents) do
        local list = not remote[parent] and children[parent]
        if not remote[parent] and not list then
          list = {}
          children[parent] = list
          parent_order[#parent_order + 1] = parent
        end
        if list then list[#list + 1] = id end
      end
      if deps.r then redis.call('HSET', key, 'parent_shards', cjson.encode(deps.r)) end
      if failed_parent then  -- created cancelled: a failed parent's settling, at submission
        redis.call('HSET', key, 'error', 'parent_failed: ' .. failed_parent)
        for _, parent in ipairs(parents) do  -- each such parent keeps it (keep_cancelled)
          local ended = not remote[parent]
            and (planned[parent] or redis.call('HGET', key_job(parent), 'status'))
          if ended == ST.failed or ended == ST.cancelled then keep_cancelled(parent, {id}) end
        end
        redis.call('PEXPIRE', key, deps.rt)
        redis.call('ZADD', EXPIRIES_KEY, now + deps.rt, id)
        local field = 'cancelled|' .. queue .. '|' .. job_type
        created[field] = (created[field] or 0) + 1
        if options[i] and options[i].cb then  -- it ends here: its callback is owed here
          owe_callback({id = id, queue = queue, type = job_type}, ST.cancelled, now)
        end
      elseif left > 0 then  -- registered with each parent not yet ended (_deps.lua)
        redis.call('HSET', key, 'parents_left', left, 'result_ttl_ms', deps.rt)
        redis.call('ZADD', key_awaiting(queue), now, id)
        for _, parent in ipairs(parents) do
          local shard = remote[parent]
          if shard then  -- its shard registers it (dep_link.lua), or settles it at once
            owe_handoff(shard, 'link', edge_key('link', parent, id),
              cjson.encode({parent = parent, child = id, shard = deps.s}), now)
          else
            local ended = planned[parent] or redis.call('HGET', key_job(parent), 'status')
            if ended ~= ST.completed and ended ~= ST.failed and ended ~= ST.cancelled then
              redis.call('SADD', key_dependents(parent), id)
              redis.call('HSET', key_job(parent), 'finish', '1')
            end
          end
        end
      end
    end
    planned[id] = status
    all_index[#all_index + 1] = now
    all_index[#all_index + 1] = id
    emit(id, 'created', status, queue, job_type, 0, '', '')
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
for _, i in ipairs(prioritized) do  -- in submission order: FIFO within a level
  push_priority(ARGV[J + (i - 1) * W + 3], ids[i], options[i].p, false)
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
if #waiting_index > 0 then redis.call('ZADD', STATUS_KEY[ST.waiting], unpack(waiting_index)) end
if #ended_index > 0 then redis.call('ZADD', STATUS_KEY[ST.cancelled], unpack(ended_index)) end
-- Each parent shows its first CHILDREN_SHOWN children (GET /jobs/{id}) and counts them all.
for _, parent in ipairs(parent_order) do show_children(parent, children[parent]) end
flush_tally(KEY_stats, created)
if batch then batch_record(batch_base, ids, fresh, n, now, reply) end
return reply
