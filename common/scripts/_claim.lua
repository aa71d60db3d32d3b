-- The hot path, batched: per job only the reads and writes of its own hash; every index,
-- gauge and counter is updated once per call with variadic commands.
--
-- Suspect jobs (recovered from a worker that died while running several jobs) start only
-- when the worker runs nothing else, and alone: if one kills its worker again, the blame, and
-- the used-up attempt, is certain. Until a worker is idle a suspect job at the head of a queue
-- stops the claim, so it is not overtaken and no worker keeps claiming around it.

local START_FIELDS = {'status', 'queue', 'type', 'attempts', 'max_attempts', 'timeout_ms',
  'created_at', 'enqueued_at', 'lease', 'payload', 'suspect', 'group', 'batch'}

-- Limits (common/limits.py), kept in a queue's limits hash and judged here, at claim time, so
-- they hold across every worker and consumer. The rate is a GCRA: `tat` is when the next job
-- may start if they are spaced exactly; a claim may run RATE_BURST_MS ahead of it (a claim of
-- several at a high rate), never more. The concurrency cap compares with the in-flight gauge,
-- which every way out of processing already lowers. A limited job stays where it is: in its
-- queue (rate, concurrency) or parked in its group's waiting list, never started, so it uses
-- no attempt. A claim held back says how long to wait: until `tat` for a rate, LIMITED_WAIT_MS
-- for a cap (nothing tells when a job ends elsewhere).
local RATE_BURST_MS = 10
local LIMITED_WAIT_MS = 50
local PARK_MAX = 100  -- jobs parked at their group's cap per claim: bounded work per call

-- admit: how many of `want` jobs `queue`'s limits let start now, and, when none may, how long
-- (ms) until one may. Sets claim.group_cap and the rate state that charge() moves on. With no
-- limits set it costs one HMGET of a missing key.
local function admit(queue, want, now, claim)
  local l = redis.call('HMGET', key_limits(queue), 'concurrency', 'interval_ms', 'tat',
    'group_concurrency')
  claim.group_cap, claim.interval = tonumber(l[4]), nil
  local allowed = want
  local cap = tonumber(l[1])
  if cap then
    allowed = math.min(allowed, cap - (tonumber(redis.call('HGET', KEY_inflight, queue)) or 0))
    if allowed <= 0 then return 0, LIMITED_WAIT_MS end
  end
  local interval = tonumber(l[2])
  if interval then
    local tat = math.max(tonumber(l[3]) or 0, now)
    local room = now + RATE_BURST_MS - tat
    if room < 0 then return 0, math.ceil(-room) end
    allowed = math.min(allowed, math.floor(room / interval) + 1)
    claim.interval, claim.tat = interval, tat
  end
  return allowed, 0
end

-- charge: `n` jobs of `queue` started under its rate; returns how long (ms) until the next may.
local function charge(queue, claim, n, now)
  if not claim.interval or n == 0 then return LIMITED_WAIT_MS end
  local tat = claim.tat + n * claim.interval
  redis.call('HSET', key_limits(queue), 'tat', tat)
  return math.max(1, math.ceil(tat - RATE_BURST_MS - now))
end

-- Puts ids[from..] (as taken: first to go first) back at the front of the queue in their
-- order, each where its priority keeps it (the list or the priority ZSET).
local function put_back(processing, queue, ids, from)
  for i = #ids, from, -1 do
    redis.call('LREM', processing, 1, ids[i])
    push_pending(queue, ids[i], priority_of(redis.call('HGET', key_job(ids[i]), 'priority')), true)
  end
end

-- take: moves up to `want` pending ids of `queue` (its list: queue_key) into the worker's list
-- and returns them in the order they go: prioritized ones first (highest level, then oldest),
-- then the list's, oldest first. Newest taken leftmost in the worker's list, as BLMOVE leaves
-- it: recovery then restores the queue order. A WAKE taken from the list is returned like an
-- id (start_ids drops it: no job); one left at the list's front once the ZSET is empty is
-- dropped here, as nothing waits for it.
local function take(queue, queue_key, want)
  local ids = {}
  local zset = key_priority(queue)
  local popped = redis.call('ZPOPMIN', zset, want)
  if #popped > 0 then
    for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
    if redis.call('EXISTS', zset) == 0 and redis.call('LINDEX', queue_key, -1) == WAKE then
      redis.call('RPOP', queue_key)
    end
  end
  local more = want - #ids
  if more > 0 then
    local taken = redis.call('LRANGE', queue_key, -more, -1)
    if #taken > 0 then
      redis.call('LTRIM', queue_key, 0, -(#taken + 1))
      for i = #taken, 1, -1 do ids[#ids + 1] = taken[i] end
    end
  end
  if #ids > 0 then redis.call('LPUSH', KEY_processing, unpack(ids)) end
  return ids
end

-- expires_at (jobs.py): a job not started by then is cancelled, never started, however late a
-- worker reaches it. Read with the start fields; expire.lua later gives the record its TTL.
local EXPIRES_AT = #START_FIELDS + 1
START_FIELDS[EXPIRES_AT] = 'expires_at'

-- The status a job read by start_ids has now: cancelled ("expired") when its expires_at passed
-- before any attempt began, else as read. Rare, so plain commands rather than batched ones.
local function expire_unstarted(id, v, now)
  if not START_SOURCES[v[1]] or (tonumber(v[4]) or 0) > 0 or tonumber(v[EXPIRES_AT]) > now then
    return v[1]
  end
  redis.call('HSET', key_job(id), 'status', ST.cancelled, 'error', 'expired', -- EXPIRED_ERROR
    'finished_at', now)
  redis.call('ZREM', STATUS_KEY[ST.pending], id)
  redis.call('ZADD', STATUS_KEY[ST.cancelled], v[7], id)
  redis.call('HINCRBY', KEY_stats, 'cancelled|' .. v[2] .. '|' .. v[3], 1)
  if v[13] then batch_move(v[13], ST.pending, ST.cancelled) end
  emit(id, 'expired', ST.cancelled, v[2], v[3], 0, '', 'expired')
  local finish = redis.call('HGET', key_job(id), 'finish')
  if finish then
    on_finished({id = id, queue = v[2], type = v[3], status = ST.cancelled,
      created_at = tonumber(v[7]) or 0, finish = finish}, ST.cancelled, now)
  end
  return ST.cancelled
end

-- start_ids: pending -> processing for ids already in the worker's processing list, oldest
-- first, all from `queue`. claim = {started, idle, stop}: started counts across the calls of
-- one claim; idle says the worker runs nothing, so a suspect job may start (alone); stop is set
-- when a suspect job ends the claim. Appends 10 fields per started job to reply: id, type,
-- queue, payload, attempt, max_attempts, timeout_ms, lease, created_at, alone (1|0). Ids no
-- longer pending (cancelled meanwhile) are dropped.
local function start_ids(worker, queue, queue_key, ids, now, reply, claim)
  local processing = KEY_processing
  local unindex, index, deadlines = {}, {}, {}
  local stats, inflight, members = {}, {}, {}
  for i, id in ipairs(ids) do
    local key = key_job(id)
    local v = redis.call('HMGET', key, unpack(START_FIELDS))
    if v[EXPIRES_AT] then v[1] = expire_unstarted(id, v, now) end  -- then dropped below
    local alone, group = v[11] == '1', v[12]
    if not START_SOURCES[v[1]] then
      redis.call('LREM', processing, 1, id)
    elseif group and claim.group_cap
        and (tonumber(redis.call('HGET', key_groups(queue), group)) or 0) >= claim.group_cap then
      -- Its group is at its cap: parked, not started, so the jobs of other groups behind it
      -- still run; release_group puts it back at the front when a job of its group ends.
      redis.call('LREM', processing, 1, id)
      redis.call('LPUSH', key_waiting(queue .. ':' .. group), id)
      redis.call('HINCRBY', key_groups(queue), PARKED, 1)
      claim.parked = claim.parked + 1
    elseif alone and not (claim.idle and claim.started == 0) then
      put_back(processing, queue, ids, i)
      claim.stop = true
      break
    else
      local attempt = (tonumber(v[4]) or 0) + 1
      local lease = (tonumber(v[9]) or 0) + 1
      redis.call('HSET', key, 'status', ST.processing, 'started_at', now, 'worker', worker,
        'attempts', attempt, 'lease', lease)
      if v[13] then tally(members, v[13], 1) end  -- v[13]: its batch (batch_move below)
      unindex[#unindex + 1] = id
      index[#index + 1] = v[7]
      index[#index + 1] = id
      deadlines[#deadlines + 1] = now + tonumber(v[6])
      deadlines[#deadlines + 1] = id
      tally(inflight, v[2], 1)
      tally_latency(stats, 'wait', v[2], now - (tonumber(v[8]) or now))
      emit(id, 'started', ST.processing, v[2], v[3], attempt, worker, '')
      claim.started = claim.started + 1
      if group then
        -- Counted whether or not a cap is set, so a cap set later sees what already runs.
        -- Below the cap (or none: removed meanwhile), the next parked job of the group may
        -- run too: back to the front of the queue, a chain that empties the waiting list.
        local running = redis.call('HINCRBY', key_groups(queue), group, 1)
        if not claim.group_cap or running < claim.group_cap then
          unpark_one(queue, group)
        end
      end
      local n = #reply
      reply[n + 1] = id
      reply[n + 2] = v[3]
      reply[n + 3] = v[2]
      reply[n + 4] = v[10]
      reply[n + 5] = attempt
      reply[n + 6] = v[5]
      reply[n + 7] = v[6]
      reply[n + 8] = lease
      reply[n + 9] = v[7]
      reply[n + 10] = alone and 1 or 0
      if alone then
        put_back(processing, queue, ids, i + 1)
        claim.stop = true
        break
      end
    end
  end
  if #unindex > 0 then
    redis.call('ZREM', STATUS_KEY[ST.pending], unpack(unindex))
    redis.call('ZADD', STATUS_KEY[ST.processing], unpack(index))
    redis.call('ZADD', KEY_deadlines, unpack(deadlines))
    flush_tally(KEY_inflight, inflight)
    flush_tally(KEY_stats, stats)
    for bid, n in pairs(members) do batch_move(bid, ST.pending, ST.processing, n) end
  end
end

-- claim_into: moves up to `wanted` ids from the queues named in ARGV[first..] (priority
-- order, paused ones skipped) into the worker's list and starts them. Oldest ids first.
-- Their lists arrive in KEYS from QUEUE_KEYS_FROM on, one per name, in the same order.
-- idle: the worker runs nothing (see start_ids). Returns how many started, and how long (ms)
-- to wait before claiming again when a queue's limit held a job back (0: none did).
local function claim_into(worker, wanted, idle, first, now, reply)
  local claim = {started = 0, idle = idle, stop = false, parked = 0}
  local processing = KEY_processing
  local wait = 0
  for q = first, #ARGV do
    if claim.started >= wanted or claim.stop then break end
    local queue = KEYS[QUEUE_KEYS_FROM + q - first]
    if redis.call('SISMEMBER', KEY_paused, ARGV[q]) == 0 then
      local before = claim.started
      local allowed, held = admit(ARGV[q], wanted - before, now, claim)
      local upto = before + allowed
      -- Cancelled ids are dropped and parked ones set aside by start_ids, so loop until
      -- enough started or empty.
      while claim.started < upto and not claim.stop and claim.parked < PARK_MAX do
        local ids = take(ARGV[q], queue, upto - claim.started)
        if #ids == 0 then break end
        start_ids(worker, ARGV[q], queue, ids, now, reply, claim)
      end
      if allowed == 0 then
        if pending_depth(ARGV[q]) == 0 then held = 0 end  -- nothing is held back
      elseif allowed < wanted - before and claim.started == upto then
        held = charge(ARGV[q], claim, claim.started - before, now)  -- the limit stopped it
      else
        charge(ARGV[q], claim, claim.started - before, now)
      end
      if held > 0 and (wait == 0 or held < wait) then wait = held end
    end
  end
  return claim.started, wait
end
