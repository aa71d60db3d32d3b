-- Dependencies (depends_on). A job submitted with parents that have not all ended is created
-- `waiting` (enqueue.lua): it is in its queue's awaiting set (counted toward the capacity), its
-- hash holds parents_left (parents not yet ended) and on_parent_failure (cancel | run), and its
-- id is in dependents:<parent> of each such parent, whose `finish` field is set so that the
-- script ending the parent calls on_finished (_finish.lua), and so settle_dependents, in the
-- same call: a parent ending can never be missed, whatever process dies when.
--
-- Each parent settles each child once: its dependents set is emptied as it is read (a parent
-- that did not complete then keeps only the children a parent's failure cancelled, for an
-- operator retry to revive: keep_cancelled), and a child that is no longer waiting (cancelled
-- meanwhile, or already settled) is skipped. A parent's record expiring later (RESULT_TTL)
-- strands nothing: every child it had was settled when it ended, and a child submitted after
-- that read the parent's status at submission (a parent whose record is gone is unknown there:
-- 400). A parent in another shard reaches its children through hand-offs (below).

-- A waiting job whose parents have all ended goes to the back of its queue, as a new job does.
local function release_waiting(child, now)
  redis.call('ZREM', key_awaiting(child.queue), child.id)
  to_pending(child, now, false)
  event(child, 'ready', now, nil)
end

-- Counts `list` (child ids) among the parent's children and shows the first CHILDREN_SHOWN of
-- them (GET /jobs/{id}): enqueue.lua for the children of a call, dep_link.lua for one in
-- another shard.
local function show_children(parent, list)
  local key = key_job(parent)
  local total = redis.call('HINCRBY', key, 'children_count', #list)
  if total - #list < CHILDREN_SHOWN then
    local ok, shown = pcall(cjson.decode, redis.call('HGET', key, 'children') or '[]')
    if not ok or type(shown) ~= 'table' then shown = {} end
    for _, child in ipairs(list) do
      if #shown >= CHILDREN_SHOWN then break end
      shown[#shown + 1] = child
    end
    redis.call('HSET', key, 'children', cjson.encode(shown))
  end
end

-- A parent and a child in different shards (QUEUE_SHARDS) meet through hand-offs (_outbox.lua,
-- common/outbox.py), each keyed on the pair, so a repeat does nothing: the child's submission
-- owes a `link` to the parent's shard (dep_link.lua registers it in remote_children:<parent>, or
-- owes the settle at once when the parent already ended), and the parent's end owes a `settle`
-- to the child's shard (dep_settle.lua, which applies it as a local parent's end would).
local function edge_key(kind, parent, child) return kind .. ':' .. parent .. '>' .. child end

local function owe_settle(shard, parent, child, status, now)
  owe_handoff(shard, 'settle', edge_key('settle', parent, child),
    cjson.encode({parent = parent, child = child, status = status}), now)
end

-- A parent that did not complete keeps, in its dependents set, the children its end (or an
-- earlier parent's failure) cancelled, for as long as its record lives: an operator retry of
-- it (retry.lua) revives them (revive_dependents). purge() deletes the set with the record.
local function keep_cancelled(parent, ids)
  if #ids == 0 then return end
  local set = key_dependents(parent)
  redis.call('SADD', set, unpack(ids))
  local ttl = redis.call('PTTL', key_job(parent))
  if ttl > 0 then redis.call('PEXPIRE', set, ttl) end
  -- Retried, it ends again: that end reads (and deletes) the set, whatever was revived.
  redis.call('HSET', key_job(parent), 'finish', '1')
end

local PARENT_FAILED = 'parent_failed: '

-- Child `id` (of this shard) hears that `parent` ended (failed: not completed): a waiting child
-- is cancelled (on_parent_failure = cancel; appended to `ended`, and to the work list so its own
-- children follow) or brought one step nearer release. Any other child is left alone: it was
-- cancelled meanwhile, or this parent's news already reached it. Returns true for a child a
-- parent's failure cancelled (now or before), which a failed parent keeps (keep_cancelled).
local function settle_child(parent, failed, id, now, ended, work, parent_status)
  local key = key_job(id)
  local v = redis.call('HMGET', key, 'status', 'queue', 'type', 'created_at', 'priority',
    'on_parent_failure', 'finish', 'result_ttl_ms', 'batch', 'error')
  if v[1] ~= ST.waiting then
    return failed and v[1] == ST.cancelled
      and string.sub(v[10] or '', 1, #PARENT_FAILED) == PARENT_FAILED
  end
  local child = {id = id, status = v[1], queue = v[2], type = v[3],
    created_at = tonumber(v[4]) or 0, priority = v[5], finish = v[7], batch = v[9]}
  if failed and v[6] ~= 'run' then
    redis.call('ZREM', key_awaiting(child.queue), id)
    set_status(child, ST.cancelled, 'error', PARENT_FAILED .. parent, 'finished_at', now)
    count('cancelled', child)
    local ttl_ms = tonumber(v[8])
    if ttl_ms then
      redis.call('PEXPIRE', key, ttl_ms)
      redis.call('ZADD', EXPIRIES_KEY, now + ttl_ms, id)
    end
    event(child, 'cancelled', now, 'parent_failed')
    ended[#ended + 1] = child
    work[#work + 1] = id
    parent_status[#parent_status + 1] = ST.cancelled
    return true
  elseif redis.call('HINCRBY', key, 'parents_left', -1) <= 0 then
    release_waiting(child, now)
  end
  return false
end

-- Walks a cascade from the parents in `work` (each with its status in parent_status) with a work
-- list (no recursion, whatever its depth): each parent's registered children are read and
-- deleted, so each hears of it once; those in other shards are owed a settle hand-off. `first`,
-- when given, stands for the first parent's children (a settle from another shard names one).
-- Returns the jobs this cancelled (id, queue, type, status, created_at, finish, batch).
local function settle_walk(work, parent_status, now, first)
  local ended = {}
  local i = 1
  while i <= #work do
    local parent, status = work[i], parent_status[i]
    local children = first
    if i > 1 or not first then
      local set = key_dependents(parent)
      children = redis.call('SMEMBERS', set)
      if #children > 0 then redis.call('DEL', set) end
      local remote = redis.call('HGETALL', key_remote_children(parent))
      if #remote > 0 then
        redis.call('DEL', key_remote_children(parent))
        for r = 1, #remote, 2 do owe_settle(remote[r + 1], parent, remote[r], status, now) end
      end
    end
    local failed, kept = status ~= ST.completed, {}
    for _, id in ipairs(children) do
      if settle_child(parent, failed, id, now, ended, work, parent_status) then
        kept[#kept + 1] = id
      end
    end
    if i > 1 or not first then keep_cancelled(parent, kept) end  -- a parent of this shard
    i = i + 1
  end
  return ended
end

-- `job` ended with `status` (completed, failed, cancelled). Every waiting child counts it as
-- ended: a completed parent, or any parent of a child with on_parent_failure = run, brings the
-- child one step nearer release (released at 0 left); a parent that failed or was cancelled
-- cancels a child with on_parent_failure = cancel (error "parent_failed: <parent id>"), which
-- settles that child's own children in turn, here. Returns the jobs this cancelled, so that
-- on_finished runs the other features' hooks for each.
local function settle_dependents(job, status, now)
  return settle_walk({job.id}, {status}, now, nil)
end

-- An operator retried `job` (failed -> pending, retry.lua): the children its failure cancelled,
-- and theirs in turn, wait again, as if the failure had not happened. Found through the kept
-- sets (keep_cancelled), judged parents first (each once every parent of theirs among them was
-- judged): one whose every parent is completed, live or revived waits again (parents_left: those
-- not completed), registered with each; one with another parent still failed or cancelled stays
-- cancelled (a retry of that parent may revive it later). Only children whose parents are all in
-- this shard: one with a parent in another shard (parent_shards) stays cancelled. Returns how
-- many it revived.
local function revive_dependents(job, now)
  local found, order, at = {}, {}, 1  -- id -> {fields, parents}; ids as found
  local walk = {job.id}
  while at <= #walk do
    local parent = walk[at]
    at = at + 1
    for _, id in ipairs(redis.call('SMEMBERS', key_dependents(parent))) do
      if not found[id] then
        local v = redis.call('HMGET', key_job(id), 'status', 'error', 'depends_on',
          'parent_shards', 'queue', 'type', 'created_at', 'priority', 'finish', 'batch')
        local ok, parents = pcall(cjson.decode, v[3] or '')
        if v[1] == ST.cancelled and not v[4] and ok and type(parents) == 'table'
            and string.sub(v[2] or '', 1, #PARENT_FAILED) == PARENT_FAILED then
          found[id] = {v = v, parents = parents}
          order[#order + 1] = id
          walk[#walk + 1] = id
        end
      end
    end
  end
  -- Parents first: a child is judged once every parent of its among `found` was.
  local waiting_on, children_of, ready = {}, {}, {}
  for _, id in ipairs(order) do
    local n = 0
    for _, parent in ipairs(found[id].parents) do
      if found[parent] then
        n = n + 1
        children_of[parent] = children_of[parent] or {}
        table.insert(children_of[parent], id)
      end
    end
    waiting_on[id] = n
    if n == 0 then ready[#ready + 1] = id end
  end
  local revived, n_revived, r = {}, 0, 1
  while r <= #ready do
    local id = ready[r]
    r = r + 1
    local entry, left, live = found[id], 0, {}
    for _, parent in ipairs(entry.parents) do
      local status = found[parent] and (revived[parent] and ST.waiting or ST.cancelled)
        or redis.call('HGET', key_job(parent), 'status')
      if status == ST.failed or status == ST.cancelled or not status then
        left = -1
        break
      elseif status ~= ST.completed then
        left = left + 1
        live[#live + 1] = parent
      end
    end
    if left > 0 then
      local v = entry.v
      local child = {id = id, status = v[1], queue = v[5], type = v[6],
        created_at = tonumber(v[7]) or 0, priority = v[8], finish = v[9], batch = v[10]}
      local key = key_job(id)
      redis.call('HDEL', key, 'error', 'finished_at')
      set_status(child, ST.waiting, 'parents_left', left)
      redis.call('PERSIST', key)
      redis.call('ZREM', EXPIRIES_KEY, id)
      redis.call('ZADD', key_awaiting(child.queue), child.created_at, id)
      for _, parent in ipairs(live) do
        redis.call('SADD', key_dependents(parent), id)
        redis.call('HSET', key_job(parent), 'finish', '1')
      end
      event(child, 'revived', now, PARENT_FAILED .. job.id .. ' retried')
      revived[id] = true
      n_revived = n_revived + 1
    end
    for _, child in ipairs(children_of[id] or {}) do
      waiting_on[child] = waiting_on[child] - 1
      if waiting_on[child] == 0 then ready[#ready + 1] = child end
    end
  end
  return n_revived
end
