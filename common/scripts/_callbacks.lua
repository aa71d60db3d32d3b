-- Completion callbacks (common/callbacks.py): a job submitted with callback_url carries it in its
-- hash with the delivery's attempts and timeout (callback_url, callback_max_attempts,
-- callback_timeout_ms, and finish = '1'). When the job ends, _finish.lua's on_finished calls
-- owe_callback in the same script as the transition, which creates the `http` job that POSTs the
-- job's final record to the URL: a finished job and its callback exist together or not at all.
--
-- The callback job:
--   * goes to the finished job's own queue, so the workers serving it deliver it; it is owed,
--     so neither the queue's capacity nor its name and type bounds can refuse it;
--   * has an id derived from the job's id and how many times the job finished (an operator's
--     retry of a failed job finishes it again, and owes a new callback), so the same finish can
--     never create two, and an id already taken is never written over;
--   * carries the record as it was at the transition (the hash's fields less the lease nonce, a
--     secret) in its payload's `record`: the job's own record may expire or be deleted before
--     the delivery; the worker renders it as GET /jobs/{id} does (worker/http_job.py);
--   * has no callback_url itself: a callback never owes a callback;
--   * is recorded on the job as callback_job_id, and names the job in callback_for.
local CALLBACK_TIMEOUT_MARGIN_MS = 15000  -- the run may also wait out a short Retry-After
local SECRET_FIELDS = {lease_nonce = true}

local function owe_callback(job, status, now)
  local key = key_job(job.id)
  local c = redis.call('HMGET', key, 'callback_url', 'callback_max_attempts',
    'callback_timeout_ms', 'callback_count')
  if not c[1] or c[1] == '' then return end
  local finishes = (tonumber(c[4]) or 0) + 1
  local id = string.sub(redis.sha1hex('callback:' .. job.id .. ':' .. finishes), 1, 32)
  redis.call('HSET', key, 'callback_count', finishes, 'callback_job_id', id)
  local cb = key_job(id)
  if redis.call('EXISTS', cb) == 1 then return end
  local fields = redis.call('HGETALL', key)
  local record = {}
  for i = 1, #fields, 2 do
    if not SECRET_FIELDS[fields[i]] then record[fields[i]] = fields[i + 1] end
  end
  record.status = status
  local timeout_ms = tonumber(c[3]) or 30000
  local payload = cjson.encode({url = c[1], method = 'POST', timeout = timeout_ms / 1000,
    record = record})
  local queue = job.queue
  redis.call('HSET', cb, 'id', id, 'type', 'http', 'queue', queue, 'payload', payload,
    'attempts', 0, 'max_attempts', tonumber(c[2]) or 1,
    'timeout_ms', timeout_ms + CALLBACK_TIMEOUT_MARGIN_MS, 'created_at', now, 'lease', 0,
    'status', ST.pending, 'enqueued_at', now, 'callback_for', job.id)
  redis.call('LPUSH', key_queue(queue), id)
  redis.call('ZADD', STATUS_KEY[ST.pending], now, id)
  redis.call('ZADD', KEY_jobs, now, id)
  redis.call('SADD', key_types(queue), 'http')
  redis.call('HINCRBY', KEY_stats, 'created|' .. queue .. '|http', 1)
  emit(id, 'created', ST.pending, queue, 'http', 0, '', 'callback of ' .. job.id)
end
