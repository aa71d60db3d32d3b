#!/usr/bin/env node
// A WorkStream worker in JavaScript for Node.js 20: no dependencies, the built-in fetch only.
// It leases jobs over HTTP (POST /leases), runs them, extends the lease while a job runs, and
// answers each under its lease token (POST /jobs/{id}/complete or /fail). See README.md.
'use strict';

const os = require('node:os');

const env = process.env;
const BASE_URL = (env.WORKSTREAM_URL || 'http://127.0.0.1:8000').replace(/\/$/, '');
const TOKEN = env.WORKSTREAM_TOKEN || '';
const QUEUES = (env.QUEUES || 'default').split(',').map((q) => q.trim()).filter(Boolean);
const CONSUMER = env.CONSUMER || `node-${os.hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64);
const COUNT = Number(env.COUNT || 10); // jobs per lease call, run concurrently: 1..100
const LEASE_S = Number(env.LEASE_S || 60); // each lease's length; extended while the job runs
// How often a running job's lease is extended; each reply also says whether a cancel was asked.
const EXTEND_EVERY_S = Number(env.EXTEND_EVERY_S || Math.min(LEASE_S / 3, 2));
const WAIT_S = Number(env.WAIT_S || 20); // long-poll: how long a lease call waits for work
const EXIT_WHEN_IDLE = env.EXIT_WHEN_IDLE === '1'; // drain mode: exit once nothing came
const ANSWER_TRIES = 8; // an answer is resent while the API is unreachable (a resend is safe)

// Handlers by job type: (payload, ctx) -> result (JSON) or a Promise of it. Throw to fail; an
// error with `permanent = true` is not retried. `ctx.cancelled` turns true once an operator
// asked to cancel the job (POST /jobs/{id}/cancel): stop early (whatever the run answers
// then, the job ends cancelled). The same three as the Python built-ins.
const handlers = {
  echo: (payload) => payload,
  sleep: async (payload, ctx) => {
    const seconds = Number((payload && payload.seconds) ?? 1);
    const until = Date.now() + seconds * 1000;
    // Short steps, so that a cancel stops it soon after the extend reply that brings it.
    while (Date.now() < until) {
      if (ctx.cancelled) throw new Error('cancelled on request');
      await delay(Math.min(100, until - Date.now()));
    }
    return { slept: seconds };
  },
  fail: (payload, ctx) => {
    const options = payload && typeof payload === 'object' ? payload : {};
    if (options.permanent) throw Object.assign(new Error('failed permanently on request'), { permanent: true });
    if (Number.isInteger(options.times) && ctx.attempt > options.times) return { succeeded_on_attempt: ctx.attempt };
    throw new Error(`failed on request (attempt ${ctx.attempt})`);
  },
};

let stopping = false;

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function log(event, fields = {}) {
  process.stdout.write(JSON.stringify({ ts: new Date().toISOString(), event, consumer: CONSUMER, ...fields }) + '\n');
}

async function call(path, body, timeoutS = 30) {
  const headers = { 'Content-Type': 'application/json' };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const resp = await fetch(BASE_URL + path, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutS * 1000),
  });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}

// Sends an answer until the API has it: a network error or a 5xx is retried with backoff.
// 200 and 409 lease_lost (the job was taken back; the server counted the late answer) end it.
async function answer(jobId, action, body) {
  for (let attempt = 1; attempt <= ANSWER_TRIES; attempt++) {
    try {
      const reply = await call(`/jobs/${jobId}/${action}`, body);
      if (reply.status === 200) return reply;
      if (reply.status < 500) {
        log(reply.status === 409 ? 'lease.lost' : 'answer.refused', { job_id: jobId, action, status: reply.status, error: reply.body && reply.body.error });
        return reply;
      }
    } catch (err) {
      log('answer.unreachable', { job_id: jobId, action, error: String(err) });
    }
    await delay(Math.min(100 * 2 ** attempt, 5000));
  }
  log('answer.given_up', { job_id: jobId, action }); // the lease expires and the job comes back
  return null;
}

async function run(lease) {
  const job = lease.job;
  const started = Date.now();
  log('job.started', { job_id: job.id, type: job.type, attempt: job.attempts });
  let lost = false;
  const ctx = { attempt: job.attempts, job, cancelled: false };
  // At most a third of the lease apart, so two missed extends still leave it held.
  const every = Math.max(Math.min(EXTEND_EVERY_S, LEASE_S / 3) * 1000, 200);
  const timer = setInterval(async () => {
    try {
      const reply = await call(`/jobs/${job.id}/extend`, { lease: lease.lease, lease_s: LEASE_S });
      if (reply.status === 409) lost = true;
      if (reply.status === 200 && reply.body.cancel_requested) ctx.cancelled = true;
    } catch (err) {
      log('extend.unreachable', { job_id: job.id, error: String(err) });
    }
  }, every);
  try {
    const handler = handlers[job.type];
    if (!handler) throw new Error(`no handler registered for type '${job.type}'`);
    const result = await handler(job.payload, ctx);
    if (lost) return log('job.abandoned', { job_id: job.id }); // its lease was taken back
    const reply = await answer(job.id, 'complete', { lease: lease.lease, result: result ?? null });
    if (reply && reply.status === 200) log('job.completed', { job_id: job.id, type: job.type, duration_ms: Date.now() - started });
  } catch (err) {
    const error = String((err && err.message) || err).slice(0, 4000) || 'error';
    await answer(job.id, 'fail', { lease: lease.lease, error, retry: !(err && err.permanent) });
    log('job.failed', { job_id: job.id, type: job.type, error });
  } finally {
    clearInterval(timer);
  }
}

async function main() {
  log('worker.started', { url: BASE_URL, queues: QUEUES, count: COUNT, lease_s: LEASE_S });
  let failures = 0;
  while (!stopping) {
    let reply;
    try {
      reply = await call('/leases', { queues: QUEUES, count: COUNT, wait: WAIT_S, lease_s: LEASE_S, consumer: CONSUMER }, WAIT_S + 30);
    } catch (err) {
      reply = { status: 0, body: String(err) };
    }
    if (reply.status !== 200) {
      failures += 1;
      log('lease.refused', { status: reply.status, body: reply.body });
      await delay(Math.min(100 * 2 ** failures, 5000));
      continue;
    }
    failures = 0;
    const leases = reply.body.leases;
    if (leases.length === 0 && EXIT_WHEN_IDLE) break;
    await Promise.all(leases.map(run));
  }
  log('worker.stopped');
}

// SIGTERM/SIGINT: lease nothing more, finish what runs, then exit. Jobs leased and not answered
// (a second signal, a crash) come back to their queue when their lease expires.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    log('worker.stopping', { signal });
  });
}

main().catch((err) => {
  log('worker.crashed', { error: String((err && err.stack) || err) });
  process.exit(1);
});
