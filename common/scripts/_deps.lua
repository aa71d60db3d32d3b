-- Dependencies (depends_on). A job submitted with parents that have not all ended is created
-- `waiting` (enqueue.lua): it is in its queue's awaiting set (counted toward the capacity), its
-- hash holds parents_left (parents not yet ended) and on_parent_failure (cancel | run), and its
-- id is in dependents:<parent> of each such parent, whose `finish` field is set so that the
-- script ending the parent calls on_finished (_finish.lua), and so settle_dependents, in the
-- same call: a parent ending can never be missed, whatever process dies when.
--
-- Each parent settles each child once: its dependents set is deleted as it is read, and a child
-- that is no longer waiting (cancelled meanwhile, or already settled) is skipped. A parent's
-- record expiring later (RESULT_TTL) strands nothing: every child it had was settled when it
-- ended, and a child submitted after that read the parent's status at submission (a parent
-- whose record is gone is unknown there: 400).

-- A waiting job whose parents have all ended goes to the back of its queue, as a new job does.
local function release_waiting(child, now)
  redis.call('ZREM', key_awaiting(child.queue), child.id)
  to_pending(child, now, false)
  event(child, 'ready', now, nil)
end

-- `job` ended with `status` (completed, failed, cancelled). Every waiting child counts it as
-- ended: a completed parent, or any parent of a child with on_parent_failure = run, brings the
-- child one step nearer release (released at 0 left); a parent that failed or was cancelled
-- cancels a child with on_parent_failure = cancel (error "parent_failed: <parent id>"), which
-- settles that child's own children in turn, here, walking the cascade with a work list (no
-- recursion, whatever its depth). Returns the jobs this cancelled (id, queue, type, status,
-- created_at, finish), so that on_finished runs the other features' hooks for each.
local function settle_dependents(job, status, now)
  local ended = {}
  local work, parent_status = {job.id}, {status}
  local i = 1
  while i <= #work do
    local parent = work[i]
    local failed = parent_status[i] ~= ST.completed
    i = i + 1
    local set = key_dependents(parent)
    local children = redis.call('SMEMBERS', set)
    if #children > 0 then redis.call('DEL', set) end
    for _, id in ipairs(children) do
      local key = key_job(id)
      local v = redis.call('HMGET', key, 'status', 'queue', 'type', 'created_at', 'priority',
        'on_parent_failure', 'finish', 'result_ttl_ms', 'batch')
      if v[1] == ST.waiting then
        local child = {id = id, status = v[1], queue = v[2], type = v[3],
          created_at = tonumber(v[4]) or 0, priority = v[5], finish = v[7], batch = v[9]}
        if failed and v[6] ~= 'run' then
          redis.call('ZREM', key_awaiting(child.queue), id)
          set_status(child, ST.cancelled, 'error', 'parent_failed: ' .. parent, 'finished_at', now)
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
        elseif redis.call('HINCRBY', key, 'parents_left', -1) <= 0 then
          release_waiting(child, now)
        end
      end
    end
  end
  return ended
end
