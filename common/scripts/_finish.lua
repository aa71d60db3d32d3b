-- The finish hook (/tmp HOOKS contract, see DESIGN): on_finished(job, status, now) is called by
-- every script at the moment a job reaches a terminal state, in the same call as the transition:
-- completed (complete.lua); failed for good (fail.lua, reclaim.lua, recover.lua); cancelled
-- (cancel.lua, expire.lua, a claim meeting an expired job in _claim.lua, a run asked to stop
-- ending in complete.lua, fail.lua, recover.lua or reclaim.lua). `job` has at least id, queue,
-- type, created_at and finish (the job hash's field); `status` is the terminal status; the
-- job's hash already holds it, with finished_at and the result or error.
--
-- Only a job whose `finish` field is non-empty has anything owed when it ends: a feature that
-- needs the hook sets `finish` to '1' on the job (a callback_url, a parent of dependents, a
-- batch member), so every other job pays one more HMGET field and nothing else. Each feature
-- adds one line below, calling its own function from its own library file (loaded above).
local function on_finished(job, status, now)
  if not job.finish or job.finish == '' then return end
  owe_callback(job, status, now)
  local ended = settle_dependents(job, status, now)  -- the dependents it cancelled run theirs
  for i = 1, #ended do on_finished(ended[i], ST.cancelled, now) end
  settle_batch(job, status, now)
end
