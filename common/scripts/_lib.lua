-- Shared helpers, prepended to every script after what scripts.py renders from Python: ST
-- (status names), BUCKETS_MS (histogram bounds), key_<name>(arg) builders from common/keys.py,
-- and, from the script's own header, KEY_<name> = KEYS[i] for each key it declares and
-- STATUS_KEY[status] for the status indexes. Every fixed key comes through KEYS. Keys known only
-- inside a script (ids found in a list, a job's queue or worker) are built by key_<name> from
-- the namespace's hash-tagged prefix P = ARGV[1], so a script stays inside one cluster slot.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local FIELDS = {'status', 'queue', 'type', 'attempts', 'max_attempts', 'timeout_ms',
  'created_at', 'enqueued_at', 'started_at', 'worker', 'lease', 'cancel_requested',
  'finish', 'priority', 'batch'}  -- finish: something is owed when the job ends (_finish.lua)
-- priority: where the job waits when pending (push_pending); batch: a batch member (batch_move)

-- The job's bookkeeping fields as a table, or nil when the hash is gone.
local function load(id)
  local values = redis.call('HMGET', key_job(id), unpack(FIELDS))
  if not values[1] then return nil end
  local job = {id = id}
  for i, name in ipairs(FIELDS) do job[name] = values[i] or false end
  job.attempts = tonumber(job.attempts) or 0
  job.max_attempts = tonumber(job.max_attempts) or 1
  job.created_at = tonumber(job.created_at) or 0
  return job
end

-- A batch member (its hash's `batch` field, read with the fields each path already reads) moved
-- from status `from` to `to` (either nil: none), `n` of them (default 1; the bulk loops of
-- start_ids and complete.lua add theirs up per batch and move them once per call): its batch
-- hash's live_<status> counts follow in the same script (_batches.lua), so GET /batches/{id}
-- reads them in O(1). A job in no batch pays nothing here. A record gone (expired) or of another
-- type (a hand edit) is left alone: HINCRBY must neither bring an expired batch back nor fail
-- the member's own transition.
local function batch_move(bid, from, to, n)
  if not bid or bid == '' or from == to then return end
  local key = key_batch(bid)
  if redis.call('TYPE', key).ok ~= 'hash' then return end
  n = n or 1
  if from then redis.call('HINCRBY', key, 'live_' .. from, -n) end
  if to then redis.call('HINCRBY', key, 'live_' .. to, n) end
end

local function set_status(job, status, ...)
  redis.call('HSET', key_job(job.id), 'status', status, ...)
  -- Status indexes are scored by creation time for newest-first listing.
  redis.call('ZREM', STATUS_KEY[job.status], job.id)
  redis.call('ZADD', STATUS_KEY[status], job.created_at, job.id)
  if job.batch then batch_move(job.batch, job.status, status) end
  job.status = status
end

local function count(name, job, by)
  redis.call('HINCRBY', KEY_stats, name .. '|' .. job.queue .. '|' .. job.type, by or 1)
end

-- Accumulates HINCRBY amounts per field and writes them in one pass.
local function tally(t, field, by) t[field] = (t[field] or 0) + by end
local function flush_tally(key, t)
  for field, by in pairs(t) do redis.call('HINCRBY', key, field, by) end
end

local function bucket_of(ms)
  for i, bound in ipairs(BUCKETS_MS) do
    if ms <= bound then return i end
  end
  return #BUCKETS_MS + 1
end

-- Adds one observation of `name` (wait|run) to a stats tally; histogram buckets are stored
-- non-cumulative (stats field name|queue|bucket index) beside the sum in ms.
local function tally_latency(stats, name, queue, ms)
  if ms < 0 then ms = 0 end
  tally(stats, name .. '|' .. queue .. '|' .. bucket_of(ms), 1)
  tally(stats, name .. '_sum_ms|' .. queue, ms)
end

local function observe(name, queue, ms)
  local stats = {}
  tally_latency(stats, name, queue, ms)
  flush_tally(KEY_stats, stats)
end

-- Priority (jobs.py PRIORITY_MAX): a pending job of priority 0, the default, waits in its queue's
-- list as ever; one of 1-9 in the queue's priority ZSET (key_priority), scored
-- (10 - priority) * PRIORITY_SPAN + a sequence within its level, so the lowest score is the
-- highest level and, within it, the oldest (a job put back to the front gets one below the
-- level's lowest). Claims take from the ZSET first (_claim.lua take).
--
-- A worker blocked in BLMOVE on the empty list is woken by WAKE, pushed onto the list by the
-- prioritized job that finds it empty; start.lua drops it and takes from the ZSET. WAKE is no
-- job id (ids are 32 hex digits): every path that reads an id from a list finds no job for it
-- and drops it. It is pushed only onto an empty list, every later push goes behind it (LPUSH)
-- or drops it first (push_pending's front), and takes remove it from the front: so a list holds
-- at most one WAKE, always at its front (index -1), and pending_depth subtracts it exactly.
local WAKE = 'wake'
local PRIORITY_SPAN = 1099511627776  -- 2^40 sequences per level: every score is exact

local function priority_of(value) return tonumber(value) or 0 end

local function push_priority(queue, id, priority, front)
  local zset = key_priority(queue)
  local low = string.format('%.0f', (10 - priority) * PRIORITY_SPAN)
  local high = string.format('%.0f', (11 - priority) * PRIORITY_SPAN - 1)
  local edge
  if front then
    edge = redis.call('ZRANGEBYSCORE', zset, low, high, 'WITHSCORES', 'LIMIT', 0, 1)
  else
    edge = redis.call('ZREVRANGEBYSCORE', zset, high, low, 'WITHSCORES', 'LIMIT', 0, 1)
  end
  -- An empty level starts mid-band, so fronts and backs each have 2^39 steps before its edge.
  local score = (10 - priority + 0.5) * PRIORITY_SPAN
  if edge[2] then score = tonumber(edge[2]) + (front and -1 or 1) end
  redis.call('ZADD', zset, string.format('%.0f', score), id)
  local list = key_queue(queue)
  if redis.call('LLEN', list) == 0 then redis.call('RPUSH', list, WAKE) end
end

-- Queues a pending id by its priority: at the back (where new jobs go) or the front (where
-- workers take next: recovered, released, put-back and unparked jobs).
local function push_pending(queue, id, priority, front)
  if priority > 0 then return push_priority(queue, id, priority, front) end
  local list = key_queue(queue)
  if front then
    if redis.call('LINDEX', list, -1) == WAKE then redis.call('RPOP', list) end
    redis.call('RPUSH', list, id)
  else
    redis.call('LPUSH', list, id)
  end
end

-- Takes a pending id out of its queue (cancel, expire). A list emptied while prioritized jobs
-- wait gets a WAKE, as push_priority would give it: a list is never empty while its ZSET holds
-- a job, so a worker blocked in BLMOVE on it always wakes for one.
local function unqueue(queue, id, priority)
  if priority > 0 then
    redis.call('ZREM', key_priority(queue), id)
    return
  end
  local list = key_queue(queue)
  redis.call('LREM', list, 1, id)
  if redis.call('LLEN', list) == 0 and redis.call('EXISTS', key_priority(queue)) == 1 then
    redis.call('RPUSH', list, WAKE)
  end
end

-- A WAKE found in a worker's list by release or recover (the start behind its BLMOVE never ran:
-- a lost reply) goes back to each queue the worker serves (its hash names them) whose list is
-- empty while prioritized jobs wait, so other blocked workers still wake for them.
local function rewake(worker_key)
  local queues = redis.call('HGET', worker_key, 'queues')
  if not queues then return end
  for queue in string.gmatch(queues, '[^,]+') do
    local list = key_queue(queue)
    if redis.call('EXISTS', key_priority(queue)) == 1 and redis.call('LLEN', list) == 0 then
      redis.call('RPUSH', list, WAKE)
    end
  end
end

-- The queue's waiting jobs: its list (less a WAKE) and its prioritized jobs.
local function pending_depth(queue)
  local list = key_queue(queue)
  local depth = redis.call('LLEN', list)
  if depth > 0 and redis.call('LINDEX', list, -1) == WAKE then depth = depth - 1 end
  return depth + redis.call('ZCARD', key_priority(queue))
end

-- The groups hash's field counting the queue's parked jobs (no group name holds a ':'), so that
-- enqueue counts them toward the queue's capacity: parking must not unbound a queue.
local PARKED = ':parked'

-- One parked job left its group's waiting list (the field goes at 0, as a group's count does).
local function unpark(groups)
  if redis.call('HINCRBY', groups, PARKED, -1) <= 0 then redis.call('HDEL', groups, PARKED) end
end

-- Moves the oldest job parked at `group`'s cap (see start_ids) that is still pending to the
-- front of its queue. Ids cancelled or expired while parked are dropped on the way: each is
-- popped once, ever, and skipping them here means a live job behind them is never stranded.
local function unpark_one(queue, group)
  local groups, waiting = key_groups(queue), key_waiting(queue .. ':' .. group)
  while true do  -- ends when the list does: every turn pops
    local id = redis.call('RPOP', waiting)
    if not id then return end
    unpark(groups)
    local v = redis.call('HMGET', key_job(id), 'status', 'priority')
    if v[1] == ST.pending then
      push_pending(queue, id, priority_of(v[2]), true)
      return
    end
  end
end

-- A job of `group` left processing: its group count drops and one parked job may go.
local function release_group(queue, group)
  local groups = key_groups(queue)
  if redis.call('HINCRBY', groups, group, -1) <= 0 then redis.call('HDEL', groups, group) end
  unpark_one(queue, group)
end

-- Undo what start did: the worker list entry, the deadline, the in-flight gauge (which is also
-- the queue's concurrency count) and the group's count.
local function leave_processing(job)
  if job.worker and job.worker ~= '' then
    redis.call('LREM', key_processing(job.worker), 1, job.id)
  end
  redis.call('ZREM', KEY_deadlines, job.id)
  redis.call('HINCRBY', KEY_inflight, job.queue, -1)
  local group = redis.call('HGET', key_job(job.id), 'group')
  if group then release_group(job.queue, group) end
end

-- An attempt ended by someone other than its holder (recover, reclaim, release): a new lease
-- number voids the holder's, so its late complete or fail is stale. A fail the holder sent
-- itself keeps the lease: that is how fail.lua knows a resend of that very call.
local function revoke_lease(job)
  redis.call('HINCRBY', key_job(job.id), 'lease', 1)
end

-- front = true puts the id where workers take next (recovered and released jobs go first).
local function to_pending(job, now, front, ...)
  set_status(job, ST.pending, 'enqueued_at', now, 'worker', '', ...)
  push_pending(job.queue, job.id, priority_of(job.priority), front)
end

local function to_scheduled(job, due, ...)
  set_status(job, ST.scheduled, 'run_at', due, 'worker', '', ...)
  redis.call('ZADD', key_scheduled(job.queue), due, job.id)
end

local function expire_terminal(job, now, ttl_ms)
  redis.call('PEXPIRE', key_job(job.id), ttl_ms)
  redis.call('ZADD', KEY_expiries, now + ttl_ms, job.id)
end

-- A run asked to stop (cancel.lua) whose holder never answered (recover, reclaim): the job ends
-- cancelled, not retried, as complete.lua and fail.lua end it when the holder answers.
local function to_cancelled(job, now, err, ttl_ms)
  set_status(job, ST.cancelled, 'error', err, 'finished_at', now)
  count('cancelled', job)
  expire_terminal(job, now, ttl_ms)
end

-- Removes a job's record and every index entry (a dead letter pushed out by the cap, a delete).
local function purge(id, queue)
  redis.call('DEL', key_job(id), key_dependents(id))  -- a failed job keeps cancelled children
  redis.call('ZREM', KEY_jobs, id)
  for _, key in pairs(STATUS_KEY) do redis.call('ZREM', key, id) end
  redis.call('ZREM', KEY_expiries, id)
  if queue then redis.call('ZREM', key_dead(queue), id) end
end

local function to_failed(job, now, err, dead_max)
  set_status(job, ST.failed, 'error', err, 'finished_at', now)
  local dead = key_dead(job.queue)
  redis.call('ZADD', dead, now, job.id)
  count('failed', job)
  -- Dead letters are capped: the oldest records go first, a few per call (bounded work).
  local excess = redis.call('ZCARD', dead) - dead_max
  if excess > 0 then
    local popped = redis.call('ZPOPMIN', dead, math.min(excess, 10))
    for i = 1, #popped, 2 do purge(popped[i], nil) end
  end
end

-- Appends one ended attempt to the job's history (the API renders it; see common/jobs.py):
-- at most HISTORY_MAX_ENTRIES entries and HISTORY_MAX_BYTES of JSON, the oldest tracebacks
-- going first, then the oldest entries; the newest is kept whole. What a hand edit left there
-- is skipped, never an error: this runs inside the scripts that record an attempt, and one
-- that failed would leave the outcome unrecorded.
local function add_history(job, now, outcome, err, tb)
  local key = key_job(job.id)
  local entries = {}
  local stored = redis.call('HGET', key, 'history')
  if stored then
    local ok, decoded = pcall(cjson.decode, stored)
    if ok and type(decoded) == 'table' then
      for _, e in ipairs(decoded) do
        if type(e) == 'table' then entries[#entries + 1] = e end
      end
    end
  end
  local entry = {attempt = job.attempts, worker = job.worker or '', ended_at = now,
    outcome = outcome}
  entry.started_at = tonumber(job.started_at)
  if err ~= '' then entry.error = err end
  if tb ~= '' then entry.traceback = tb end
  entries[#entries + 1] = entry
  while #entries > HISTORY_MAX_ENTRIES do table.remove(entries, 1) end
  local sizes, size = {}, 1  -- '[', ']' and the commas: one byte per entry, plus one
  for i, e in ipairs(entries) do
    sizes[i] = #cjson.encode(e) + 1
    size = size + sizes[i]
  end
  for i = 1, #entries - 1 do
    if size <= HISTORY_MAX_BYTES then break end
    if entries[i].traceback then
      entries[i].traceback = nil
      local smaller = #cjson.encode(entries[i]) + 1
      size = size - sizes[i] + smaller
      sizes[i] = smaller
    end
  end
  while size > HISTORY_MAX_BYTES and #entries > 1 do
    size = size - table.remove(sizes, 1)
    table.remove(entries, 1)
  end
  redis.call('HSET', key, 'history', cjson.encode(entries))
end

-- Full jitter: a uniform delay in [0, min(cap, base * 2^(attempt-1))].
local function backoff_ms(attempt, base_ms, cap_ms, fraction)
  local ceiling = math.min(cap_ms, base_ms * math.pow(2, math.max(attempt - 1, 0)))
  return math.floor(ceiling * fraction)
end

-- A failed attempt: retry after backoff while attempts remain, else dead letter.
local function retry_or_bury(job, now, err, permanent, delay_ms, dead_max)
  if (not permanent) and job.attempts < job.max_attempts then
    count('retried', job)
    if delay_ms > 0 then
      to_scheduled(job, now + delay_ms, 'error', err)
      return 'scheduled'
    end
    to_pending(job, now, false, 'error', err)
    return 'pending'
  end
  to_failed(job, now, err, dead_max)
  return 'failed'
end

-- A (queue, type) a call is about to use, looked up once per call: unknown ones are added to
-- new_queues / new_types, so the call's bounds (MAX_QUEUES, MAX_TYPES) judge them before any
-- write (enqueue.lua; a batch's callbacks, _batches.lua).
local function note_names(queue, job_type, known_queue, known_type, new_queues, new_types)
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
