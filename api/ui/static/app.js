/*
 * WorkStream dashboard: vanilla JS, no framework, no build step, no third-party assets.
 *
 * Routes (URL hash):
 *   #/overview                                   queues, throughput/latency charts, workers
 *   #/jobs?status=&queue=&type=&limit=&cursor=   job list with filters and cursor pagination
 *   #/jobs/<id>                                  one job: payload, result, error, timestamps,
 *                                                every attempt (worker, outcome, traceback)
 *   #/schedules                                  every schedule: timing, zone, state, next and
 *                                                last run, last job; pause/resume
 *   #/queues/<name>                              one queue: counts, limits, in flight vs cap
 *   #/batches                                    every batch: state, counts, progress bar
 *   #/batches/<id>                               one batch: counts, callbacks, members
 *
 * Charts: the last 15 minutes come from GET /stats/timeline (one point a minute, recorded by
 * the server whether or not a page was open), continued by the page's own 2.5 s samples of
 * GET /metrics from the moment it opened.
 *
 * Auth: any 401 opens the token prompt; the token lives in sessionStorage ("workstream.token")
 * and goes out as `Authorization: Bearer <token>` on every fetch. No cookies (credentials: omit).
 *
 * Stable test hooks (data-testid; <name> = queue name, <id> = job id, <wid> = worker id):
 *   Layout:    nav-overview, nav-jobs, last-updated, view, token-clear
 *   Banners:   error-banner, error-text, error-close, notice
 *   Confirm:   confirm-dialog, confirm-title, confirm-message,
 *              confirm-ok (#confirm-ok), confirm-cancel (#confirm-cancel)
 *   Token:     token-prompt, token-form, token-input (#token-input),
 *              token-submit (#token-submit), token-error
 *   Overview:  overview, alerts (hidden when all is well), alert-unserved-<name>,
 *              alert-unhandled-<name>,
 *              stat-workers, stat-busy ("busy / slots" over live workers), stat-in-progress,
 *              stat-created, stat-completed, stat-failed, stat-retried,
 *              throughput-chart (figure; data-state="data|empty", data-history-points = points
 *              from the server's timeline), throughput-canvas, throughput-completed,
 *              throughput-failed (current rates, "1.5/s"), throughput-total-completed,
 *              throughput-total-failed (jobs in the last 15 minutes),
 *              latency-chart (panel holding both figures), wait-chart, run-chart,
 *              wait-p50, wait-p95, wait-p99, run-p50, run-p95, run-p99 (current values),
 *              queues-table, queue-row-<name>, queue-pending-<name>, queue-processing-<name>,
 *              queue-scheduled-<name>, queue-failed-<name>,
 *              queue-paused-<name> (text "paused"/"active", attribute data-paused="true|false"),
 *              queue-workers-<name> (live workers serving it), queue-unserved-<name> (shown
 *              while it has pending jobs and no live worker), queue-unhandled-<name> (shown
 *              while it holds types no live worker serving it handles),
 *              pause-<name> (shown while active), resume-<name> (shown while paused),
 *              retry-failed-<name>, purge-failed-<name>, queue-jobs-<name> (link to its jobs),
 *              queues-empty, workers-table, worker-row-<wid>, worker-age-<wid>,
 *              worker-slots-<wid> ("busy / slots", "(+k next)" for jobs taken ahead of a
 *              free slot; data-busy = jobs running now),
 *              worker-handlers-<wid>, workers-empty
 *   Jobs list: jobs-view, jobs-filters, filter-status (<select>), filter-queue (<input>),
 *              filter-type (<input>), filter-limit (<select>), filter-apply (submit),
 *              filter-reset, jobs-refresh, jobs-table, job-row-<id>, job-link-<id>,
 *              job-status-<id>, jobs-empty, first-page, prev-page, next-page, page-info
 *   Job page:  job-view, job-id, job-status, job-cancelling (badge shown while a processing job
 *              was asked to stop), job-progress (the handler's last report), job-type, job-queue, job-attempts, job-timeout,
 *              job-batch (job-batch-link: to its batch's page, when a member),
 *              job-worker, job-idempotency-key, job-depends-on and job-children (job-link
 *              anchors to each parent's and child's page), job-created-at, job-enqueued-at, job-run-at,
 *              job-started-at, job-finished-at, job-payload, job-result, job-error,
 *              job-history (table), job-history-empty, history-row-<n> (n = 1 for the oldest
 *              attempt shown; a processing job's last row is the attempt running now, outcome
 *              "running"), history-worker-<n>, history-outcome-<n>, history-error-<n>,
 *              history-traceback-<n> (a <details> holding the traceback),
 *              job-retry, job-cancel, job-delete, job-back, job-not-found
 *   Schedules: nav-schedules, schedules-view, schedules-table, schedules-empty,
 *              schedule-row-<sid>, schedule-id-<sid>, schedule-timing-<sid> ("cron <expr>" or
 *              "every <d>"), schedule-timezone-<sid> (– for every), schedule-job-<sid>,
 *              schedule-paused-<sid> (data-paused="true|false"), schedule-next-<sid>,
 *              schedule-last-<sid> (data-iso = the RFC 3339 time), schedule-last-job-<sid> (a
 *              link to the job once one ran), schedule-runs-<sid>, schedule-pause-<sid> (shown
 *              while active), schedule-resume-<sid> (shown while paused)
 *   Queue page: queue-page-link-<name> (overview row), queue-page, queue-page-name,
 *              queue-page-paused, queue-page-jobs, queue-page-pending, queue-page-processing,
 *              queue-page-scheduled, queue-page-failed, queue-page-parked, queue-page-waiting,
 *              queue-page-workers,
 *              queue-limits, limit-rate, limit-concurrency, limit-group-concurrency ("none" when
 *              unset), limit-inflight ("processing / cap", "/ no cap"), limit-parked,
 *              queue-not-found, queue-back
 *   Batches:   nav-batches, batches-view, batches-table, batches-empty, batch-row-<bid>,
 *              batch-link-<bid>, batch-state-<bid> (data-state), batch-total-<bid>,
 *              batch-progress-<bid> (data-progress = the fraction ended), batch-created-<bid>;
 *              batch page: batch-page, batch-id, batch-progress, batch-state, batch-total,
 *              batch-active, batch-completed, batch-failed, batch-cancelled, batch-statuses
 *              (members by status now: batch-now-<status>, data-count), batch-on-complete,
 *              batch-on-success, batch-created-at, batch-settled-at, batch-members,
 *              batch-member-<id>, batch-back, batch-not-found
 *   Other:     route-not-found (unknown hash route)
 */
(function () {
  "use strict";

  const TOKEN_KEY = "workstream.token";
  const POLL_MS = 2500;
  const JOB_POLL_MS = 3000;
  const TIMELINE_MS = 60000; // the server records a point a minute: no use asking more often
  const WINDOW_MS = 15 * 60 * 1000;
  const GAP_MS = 15000; // a longer hole between samples breaks the chart line
  const STATUSES = [
    "waiting", "scheduled", "pending", "processing", "completed", "failed", "cancelled",
  ];
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const LIMITS = [25, 50, 100, 200, 500];
  const DEFAULT_LIMIT = 50;

  // ---------------------------------------------------------------- small DOM helpers

  function $(id) {
    return document.getElementById(id);
  }

  /** h("td", {class: "num", testid: "x"}, child, ...): builds elements without innerHTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "class") el.className = value;
        else if (key === "testid") el.dataset.testid = value;
        else if (key === "text") el.textContent = value;
        else if (key.startsWith("on") && typeof value === "function") {
          el.addEventListener(key.slice(2), value);
        } else if (value === true) el.setAttribute(key, "");
        else el.setAttribute(key, String(value));
      }
    }
    appendAll(el, children);
    return el;
  }

  function appendAll(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.appendChild(typeof child === "string" || typeof child === "number"
        ? document.createTextNode(String(child)) : child);
    }
  }

  function setText(el, text) {
    const value = String(text);
    if (el && el.textContent !== value) el.textContent = value;
  }

  function tableWrap(table) {
    return h("div", { class: "table-wrap" }, table);
  }

  // ---------------------------------------------------------------- formatting

  function fmtInt(n) {
    return typeof n === "number" && isFinite(n) ? n.toLocaleString("en-US") : "–";
  }

  function fmtRate(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    if (v === 0) return "0/s";
    if (v < 10) return v.toFixed(2) + "/s";
    if (v < 100) return v.toFixed(1) + "/s";
    return Math.round(v).toLocaleString("en-US") + "/s";
  }

  function fmtAxis(v) {
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1).replace(/\.0$/, "") + "k";
    return String(Number(v.toPrecision(3)));
  }

  function fmtSeconds(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    if (v === 0) return "0";
    if (v < 0.001) return (v * 1e6).toFixed(0) + "µs";
    if (v < 1) return String(Number((v * 1000).toFixed(v < 0.01 ? 1 : 0))) + "ms";
    if (v < 60) return String(Number(v.toFixed(v < 10 ? 2 : 1))) + "s";
    if (v < 3600) return (v / 60).toFixed(1) + "m";
    return (v / 3600).toFixed(1) + "h";
  }

  function fmtAge(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "–";
    if (seconds < 60) return seconds.toFixed(1) + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m " + Math.floor(seconds % 60) + "s";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h " + Math.floor((seconds % 3600) / 60) + "m";
    return Math.floor(seconds / 86400) + "d " + Math.floor((seconds % 86400) / 3600) + "h";
  }

  function relative(iso) {
    if (!iso) return "";
    const t = Date.parse(iso);
    if (isNaN(t)) return "";
    const diff = (Date.now() - t) / 1000;
    return diff >= 0 ? fmtAge(diff) + " ago" : "in " + fmtAge(-diff);
  }

  function fmtTime(iso) {
    if (!iso) return "–";
    const t = Date.parse(iso);
    if (isNaN(t)) return String(iso);
    return new Date(t).toLocaleString();
  }

  function prettyJson(value) {
    if (value === undefined) return "null";
    try {
      return JSON.stringify(value, null, 2);
    } catch (err) {
      return String(value);
    }
  }

  /** An error text that is itself JSON is shown indented; anything else as written. */
  function prettyError(text) {
    if (text === null || text === undefined) return "null";
    if (typeof text !== "string") return prettyJson(text);
    const trimmed = text.trim();
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
      try {
        return JSON.stringify(JSON.parse(trimmed), null, 2);
      } catch (err) {
        /* not JSON after all */
      }
    }
    return text;
  }

  /** The last non-empty line of an error (a traceback's exception line), shortened. */
  function errorSummary(text) {
    const lines = text.split("\n").map((line) => line.trim()).filter(Boolean);
    const last = lines.length ? lines[lines.length - 1] : "";
    return last.length > 120 ? last.slice(0, 119) + "…" : last;
  }

  function shortId(id) {
    return typeof id === "string" && id.length > 12 ? id.slice(0, 12) + "…" : String(id);
  }

  // ---------------------------------------------------------------- banners

  let errorSource = null;
  let noticeTimer = null;

  function showError(message, source) {
    errorSource = source || "action";
    setText($("error-text"), message);
    $("error-banner").hidden = false;
  }

  /** Clears the banner only if `source` put it there (a good poll must not hide an action's error). */
  function clearError(source) {
    if (source && errorSource !== source) return;
    errorSource = null;
    $("error-banner").hidden = true;
  }

  function showNotice(message) {
    setText($("notice-text"), message);
    $("notice-banner").hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { $("notice-banner").hidden = true; }, 6000);
  }

  function errorMessage(err) {
    if (err instanceof ApiError) {
      const code = err.code ? " [" + err.code + "]" : "";
      const status = err.status ? " (HTTP " + err.status + ")" : "";
      return err.message + code + status;
    }
    return err && err.message ? err.message : String(err);
  }

  // ---------------------------------------------------------------- API client

  class ApiError extends Error {
    constructor(status, code, message, body) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = code;
      this.body = body;
    }
  }

  let authBlocked = false; // set by a 401 until a token is submitted: polls stay quiet meanwhile

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (err) {
      return "";
    }
  }

  function setToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (err) {
      /* storage unavailable (private mode): the token lasts until reload via memoryToken */
    }
    memoryToken = token;
    $("token-clear").hidden = !token;
  }

  let memoryToken = "";

  async function api(method, path, body) {
    if (authBlocked) throw new ApiError(401, "unauthorized", "API token required");
    const headers = { Accept: "application/json" };
    const token = getToken() || memoryToken;
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network_error", "Cannot reach the API: " + (err && err.message));
    }
    let text = "";
    try {
      text = await resp.text();
    } catch (err) {
      text = "";
    }
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (err) {
        data = null;
      }
    }
    if (resp.status === 401) {
      requireToken(Boolean(token));
      throw new ApiError(401, "unauthorized", "API token required");
    }
    if (!resp.ok) {
      const error = data && typeof data === "object" && data.error ? data.error : null;
      const message = error && error.message ? String(error.message)
        : data && data.title ? String(data.title) : (text.slice(0, 200) || resp.statusText || "request failed");
      throw new ApiError(resp.status, error && error.code ? String(error.code) : "", message, data);
    }
    return data;
  }

  function enc(part) {
    return encodeURIComponent(part);
  }

  // ---------------------------------------------------------------- token prompt

  function requireToken(hadToken) {
    authBlocked = true;
    stopJobPoll();
    const prompt = $("token-prompt");
    const error = $("token-error");
    if (hadToken) {
      setText(error, "That token was not accepted. Try again.");
      error.hidden = false;
    } else {
      error.hidden = true;
    }
    if (prompt.hidden) {
      prompt.hidden = false;
      const input = $("token-input");
      input.value = "";
      setTimeout(() => input.focus(), 0);
    }
    clearError("poll");
  }

  function initTokenPrompt() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      setToken(value);
      $("token-prompt").hidden = true;
      authBlocked = false;
      clearError();
      render();
      kickPoll();
    });
    $("token-clear").addEventListener("click", () => {
      setToken("");
      location.reload();
    });
    $("token-clear").hidden = !getToken();
  }

  // ---------------------------------------------------------------- confirm modal

  let confirmResolve = null;

  /** Custom confirmation (not window.confirm, so browser tests can click it). */
  function confirmAction(title, message, okLabel, danger) {
    const modal = $("confirm-modal");
    if (confirmResolve) confirmResolve(false);
    setText($("confirm-title"), title);
    setText($("confirm-message"), message);
    const ok = $("confirm-ok");
    setText(ok, okLabel || "Confirm");
    ok.className = "btn " + (danger ? "btn-danger" : "btn-primary");
    modal.hidden = false;
    setTimeout(() => ok.focus(), 0);
    return new Promise((resolve) => {
      confirmResolve = resolve;
    });
  }

  function closeConfirm(answer) {
    $("confirm-modal").hidden = true;
    const resolve = confirmResolve;
    confirmResolve = null;
    if (resolve) resolve(answer);
  }

  function initConfirm() {
    $("confirm-ok").addEventListener("click", () => closeConfirm(true));
    $("confirm-cancel").addEventListener("click", () => closeConfirm(false));
    $("confirm-modal").addEventListener("click", (event) => {
      if (event.target === $("confirm-modal")) closeConfirm(false);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("confirm-modal").hidden) closeConfirm(false);
    });
  }

  /** Confirm, run `action`, report its error in the banner; returns the action's result or null. */
  async function confirmed(title, message, okLabel, danger, action) {
    const yes = await confirmAction(title, message, okLabel, danger);
    if (!yes) return null;
    try {
      const result = await action();
      clearError("action");
      return { value: result };
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) showError(errorMessage(err), "action");
      return null;
    }
  }

  // ---------------------------------------------------------------- metrics history

  /**
   * Points are {t (end, ms), span (ms covered), completed, failed (per second), completedCount,
   * failedCount, wait: {p50,p95,p99}, run: {...}}. `history` holds the server's record, one a
   * minute; `points` the page's own samples of the cumulative counters since it opened.
   */
  const metrics = {
    prev: null,
    points: [],
    latest: null,
    history: [],
    historyTotals: null, // {completed, failed, at} over the timeline's window, once loaded
    historyAt: 0, // when the timeline was last asked for (client time)
  };

  /** A figure under its current JSON name, else under the name an older API gave it. */
  function metric(data, name, alias) {
    const value = num(data[name]);
    return value !== null ? value : num(data[alias]);
  }

  function histogramOf(data, name) {
    if (data[name]) return data[name];
    const old = data.histograms || {};
    return old[name.replace(/^job_/, "")];
  }

  function bucketsOf(hist) {
    if (!hist || !Array.isArray(hist.buckets)) return null;
    const out = [];
    for (const pair of hist.buckets) {
      if (!Array.isArray(pair) || pair.length < 2) continue;
      const le = pair[0] === "+Inf" || pair[0] === "Inf" ? Infinity : Number(pair[0]);
      const count = Number(pair[1]);
      if (isNaN(le) || !isFinite(count)) continue;
      out.push([le, count]);
    }
    out.sort((a, b) => a[0] - b[0]);
    return out;
  }

  /** Per-bucket deltas of two cumulative histograms, or null after a reset / with no layout. */
  function histogramDelta(cur, prev) {
    if (!cur || !prev) return null;
    const before = new Map(prev.map(([le, count]) => [le, count]));
    const out = [];
    for (const [le, count] of cur) {
      const old = before.has(le) ? before.get(le) : 0;
      if (count < old) return null;
      out.push([le, count - old]);
    }
    return out;
  }

  /** histogram_quantile over cumulative (le, count) pairs, linear within the bucket. */
  function quantile(q, cumulative) {
    if (!cumulative || cumulative.length === 0) return null;
    const total = cumulative[cumulative.length - 1][1];
    if (!(total > 0)) return null;
    const rank = q * total;
    let lowerLe = 0;
    let lowerCount = 0;
    for (const [le, count] of cumulative) {
      if (count >= rank && count > lowerCount) {
        if (!isFinite(le)) return lowerLe; // the +Inf bucket: best we can say is its lower edge
        const within = count - lowerCount;
        return lowerLe + (le - lowerLe) * ((rank - lowerCount) / within);
      }
      if (isFinite(le)) lowerLe = le;
      lowerCount = count;
    }
    return lowerLe;
  }

  function percentiles(cumulative) {
    return {
      p50: quantile(0.5, cumulative),
      p95: quantile(0.95, cumulative),
      p99: quantile(0.99, cumulative),
    };
  }

  function num(value) {
    const n = Number(value);
    return isFinite(n) ? n : null;
  }

  function recordMetrics(data) {
    const now = Date.now();
    const sample = {
      t: now,
      completed: metric(data, "jobs_completed_total", "jobs_completed"),
      failed: metric(data, "jobs_failed_total", "jobs_failed"),
      wait: bucketsOf(histogramOf(data, "job_wait_seconds")),
      run: bucketsOf(histogramOf(data, "job_run_seconds")),
    };
    const prev = metrics.prev;
    metrics.prev = sample;
    metrics.latest = data;
    if (prev && now > prev.t) {
      const dt = (now - prev.t) / 1000;
      const count = (a, b) => (a === null || b === null || a < b ? null : a - b);
      const completedCount = count(sample.completed, prev.completed);
      const failedCount = count(sample.failed, prev.failed);
      metrics.points.push({
        t: now,
        span: now - prev.t,
        completed: completedCount === null ? null : completedCount / dt,
        failed: failedCount === null ? null : failedCount / dt,
        completedCount,
        failedCount,
        wait: percentiles(histogramDelta(sample.wait, prev.wait)),
        run: percentiles(histogramDelta(sample.run, prev.run)),
      });
    }
    const cutoff = now - WINDOW_MS - POLL_MS * 2;
    while (metrics.points.length && metrics.points[0].t < cutoff) metrics.points.shift();
  }

  function quantilesOf(summary) {
    const q = summary && typeof summary === "object" ? summary : {};
    return { p50: num(q.p50 ?? NaN), p95: num(q.p95 ?? NaN), p99: num(q.p99 ?? NaN) };
  }

  /** The server's per-minute record of the last 15 minutes, on the browser's clock. */
  async function loadTimeline() {
    metrics.historyAt = Date.now();
    const data = await api("GET", "/stats/timeline?minutes=15");
    const serverNow = Date.parse(data && data.now);
    const skew = isNaN(serverNow) ? 0 : Date.now() - serverNow;
    const history = [];
    let completed = 0;
    let failed = 0;
    for (const p of data && Array.isArray(data.points) ? data.points : []) {
      const start = Date.parse(p.start);
      const end = Date.parse(p.end);
      if (isNaN(start) || isNaN(end) || end <= start) continue;
      history.push({
        t: end + skew,
        span: end - start,
        completed: num(p.completed_per_s),
        failed: num(p.failed_per_s),
        completedCount: num(p.completed),
        failedCount: num(p.failed),
        wait: quantilesOf(p.wait_seconds),
        run: quantilesOf(p.run_seconds),
      });
      completed += num(p.completed) || 0;
      failed += num(p.failed) || 0;
    }
    metrics.history = history;
    metrics.historyTotals = { completed, failed, at: history.length ? history[history.length - 1].t : 0 };
  }

  /** The record up to the page's first own sample, then the page's samples. */
  function chartPoints() {
    const live = metrics.points;
    const liveStart = live.length ? live[0].t - live[0].span : Infinity;
    return metrics.history.filter((p) => p.t <= liveStart + POLL_MS).concat(live);
  }

  /** Jobs completed and failed over the window: the record plus the page's samples since. */
  function windowTotals() {
    const totals = metrics.historyTotals;
    if (!totals) return null;
    let completed = totals.completed;
    let failed = totals.failed;
    for (const p of metrics.points) {
      if (p.t <= totals.at) continue;
      completed += p.completedCount || 0;
      failed += p.failedCount || 0;
    }
    return { completed, failed };
  }

  // ---------------------------------------------------------------- charts (canvas)

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (m * exp >= v) return m * exp;
    }
    return 10 * exp;
  }

  /**
   * Draws line series over the last 15 minutes.
   * series: [{color, values: [[t, v|null, span], ...]}] (span: the ms a point sums up; a point
   * joins the previous one when no more than GAP_MS lies between them); format: y-axis labels.
   */
  function drawChart(canvas, series, format) {
    if (!canvas || !canvas.isConnected) return;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const fg = cssVar("--muted", "#667085");
    const grid = cssVar("--grid", "#e6e9ef");
    const left = 54;
    const right = 10;
    const top = 8;
    const bottom = 20;
    const plotW = Math.max(10, width - left - right);
    const plotH = Math.max(10, height - top - bottom);
    const now = Date.now();
    const start = now - WINDOW_MS;

    let max = 0;
    let any = false;
    for (const s of series) {
      for (const [t, v] of s.values) {
        if (t < start || v === null || !isFinite(v)) continue;
        any = true;
        if (v > max) max = v;
      }
    }
    const ticks = 4;
    const yMax = niceCeil((max * 1.05) / ticks) * ticks; // a round step per grid line
    const x = (t) => left + ((t - start) / WINDOW_MS) * plotW;
    const y = (v) => top + plotH - (v / yMax) * plotH;

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = grid;
    ctx.fillStyle = fg;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let i = 0; i <= ticks; i++) {
      const v = (yMax / ticks) * i;
      const py = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, py);
      ctx.lineTo(left + plotW, py);
      ctx.stroke();
      ctx.fillText(format(v), left - 6, py);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const minutes of [15, 10, 5, 0]) {
      const px = Math.round(x(now - minutes * 60000)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, top + plotH);
      ctx.stroke();
      const label = minutes === 0 ? "now" : "-" + minutes + "m";
      ctx.textAlign = minutes === 15 ? "left" : minutes === 0 ? "right" : "center";
      ctx.fillText(label, px, top + plotH + 5);
    }

    if (!any) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("collecting data…", left + plotW / 2, top + plotH / 2);
      return;
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 1, plotW + 1, plotH + 2);
    ctx.clip();
    ctx.lineWidth = 1.8;
    ctx.lineJoin = "round";
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.beginPath();
      let drawing = false;
      let lastT = 0;
      for (const [t, v, span] of s.values) {
        if (v === null || !isFinite(v) || t < start - GAP_MS) {
          drawing = false;
          continue;
        }
        // A point is an average over its span: a flat step from its start to its end (at
        // least 2 px, so that a lone short point still shows).
        const from = x(t - (span || 0));
        const py = y(v);
        if (drawing && t - (span || 0) - lastT <= GAP_MS) ctx.lineTo(from, py);
        else ctx.moveTo(from, py);
        ctx.lineTo(Math.max(x(t), from + 2), py);
        drawing = true;
        lastT = t;
      }
      ctx.stroke();
    }
    ctx.restore();
  }

  /** Rates: the newest point (null after a counter reset). Latency: the newest window with jobs. */
  function latestValue(key, sub) {
    const pts = chartPoints();
    if (!pts.length) return null;
    if (!sub) return pts[pts.length - 1][key];
    for (let i = pts.length - 1; i >= 0; i--) {
      const value = pts[i][key][sub];
      if (value !== null && value !== undefined) return value;
    }
    return null;
  }

  function drawCharts() {
    if (!overviewDom) return;
    const pts = chartPoints();
    const figure = overviewDom.throughputFigure;
    figure.dataset.state = pts.some((p) => p.completed !== null) ? "data" : "empty";
    figure.dataset.historyPoints = String(metrics.history.length);
    drawChart(overviewDom.throughputCanvas, [
      { color: cssVar("--c-completed", "#1d8a4a"), values: pts.map((p) => [p.t, p.completed, p.span]) },
      { color: cssVar("--c-failed", "#c8322a"), values: pts.map((p) => [p.t, p.failed, p.span]) },
    ], fmtAxis);
    for (const kind of ["wait", "run"]) {
      drawChart(overviewDom[kind + "Canvas"], ["p50", "p95", "p99"].map((p) => ({
        color: cssVar("--c-" + p, "#2d5bd7"),
        values: pts.map((point) => [point.t, point[kind][p], point.span]),
      })), fmtSeconds);
    }
    const totals = windowTotals();
    setText(overviewDom.totals.completed, totals ? fmtInt(totals.completed) : "–");
    setText(overviewDom.totals.failed, totals ? fmtInt(totals.failed) : "–");
    setText(overviewDom.values.completed, fmtRate(latestValue("completed")));
    setText(overviewDom.values.failed, fmtRate(latestValue("failed")));
    for (const kind of ["wait", "run"]) {
      for (const p of ["p50", "p95", "p99"]) {
        setText(overviewDom.values[kind + "-" + p], fmtSeconds(latestValue(kind, p)));
      }
    }
  }

  // ---------------------------------------------------------------- keyed table rows

  /** Keeps `tbody` rows in step with `items` by key, updating rows in place (clicks stay valid). */
  function syncRows(tbody, items, keyOf, create, update) {
    const existing = new Map();
    for (const row of Array.from(tbody.children)) existing.set(row.dataset.key, row);
    const wanted = [];
    for (const item of items) {
      const key = String(keyOf(item));
      let row = existing.get(key);
      if (!row) {
        row = create(item);
        row.dataset.key = key;
      }
      existing.delete(key);
      update(row, item);
      wanted.push(row);
    }
    for (const row of existing.values()) row.remove();
    wanted.forEach((row, index) => {
      if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
    });
  }

  // ---------------------------------------------------------------- overview

  let overviewDom = null;

  function statCard(label, testid) {
    const value = h("div", { class: "card-value", testid }, "–");
    return { el: h("div", { class: "card" }, h("div", { class: "card-label" }, label), value), value };
  }

  function legendItem(cls, label, testid) {
    const value = h("span", { class: "legend-value", testid }, "–");
    const el = h("span", { class: "legend-item" },
      h("span", { class: "swatch swatch-" + cls }), label + " ", value);
    return { el, value };
  }

  function renderOverview(view) {
    const stats = {
      workers: statCard("Workers live", "stat-workers"),
      busy: statCard("Busy slots", "stat-busy"),
      inProgress: statCard("In progress", "stat-in-progress"),
      created: statCard("Jobs created", "stat-created"),
      completed: statCard("Completed", "stat-completed"),
      failed: statCard("Failed", "stat-failed"),
      retried: statCard("Retried", "stat-retried"),
    };
    const values = {};
    const tpCompleted = legendItem("completed", "completed", "throughput-completed");
    const tpFailed = legendItem("failed", "failed", "throughput-failed");
    values.completed = tpCompleted.value;
    values.failed = tpFailed.value;
    const latencyLegend = (kind) => ["p50", "p95", "p99"].map((p) => {
      const item = legendItem(p, p, kind + "-" + p);
      values[kind + "-" + p] = item.value;
      return item.el;
    });
    const throughputCanvas = h("canvas", {
      class: "chart", testid: "throughput-canvas", role: "img",
      "aria-label": "Completed and failed jobs per second, last 15 minutes",
    });
    const waitCanvas = h("canvas", {
      class: "chart", role: "img", "aria-label": "Queue wait time percentiles, last 15 minutes",
    });
    const runCanvas = h("canvas", {
      class: "chart", role: "img", "aria-label": "Run time percentiles, last 15 minutes",
    });

    const queuesBody = h("tbody");
    const workersBody = h("tbody");
    const queuesEmpty = h("p", { class: "empty", testid: "queues-empty", hidden: true },
      "No queues yet.");
    const alerts = h("ul", { class: "alerts", testid: "alerts", role: "status", hidden: true });
    const totals = {
      completed: h("span", { class: "legend-value", testid: "throughput-total-completed" }, "–"),
      failed: h("span", { class: "legend-value", testid: "throughput-total-failed" }, "–"),
    };
    const throughputFigure = h("figure", {
      class: "chart-figure", testid: "throughput-chart", "data-state": "empty",
    }, throughputCanvas,
    h("figcaption", { class: "legend" }, tpCompleted.el, tpFailed.el));
    const workersEmpty = h("p", { class: "empty", testid: "workers-empty", hidden: true },
      "No live workers.");

    view.appendChild(h("div", { testid: "overview" },
      alerts,
      h("div", { class: "cards" }, Object.values(stats).map((s) => s.el)),
      h("div", { class: "charts" },
        h("section", { class: "panel" },
          h("div", { class: "panel-head" }, h("h2", null, "Throughput"),
            h("span", { class: "muted" }, "jobs per second, last 15 min: ",
              totals.completed, " completed, ", totals.failed, " failed")),
          throughputFigure),
        h("section", { class: "panel", testid: "latency-chart" },
          h("div", { class: "panel-head" }, h("h2", null, "Latency"),
            h("span", { class: "muted" }, "p50 / p95 / p99, last 15 min")),
          h("figure", { class: "chart-figure", testid: "wait-chart" },
            h("figcaption", null, "Wait time (enqueued → started)"),
            waitCanvas,
            h("div", { class: "legend" }, latencyLegend("wait"))),
          h("figure", { class: "chart-figure", testid: "run-chart" },
            h("figcaption", null, "Run time (started → finished)"),
            runCanvas,
            h("div", { class: "legend" }, latencyLegend("run"))))),
      h("section", { class: "panel" },
        h("div", { class: "panel-head" }, h("h2", null, "Queues")),
        tableWrap(h("table", { testid: "queues-table" },
          h("thead", null, h("tr", null,
            h("th", null, "Queue"), h("th", { class: "num" }, "Pending"),
            h("th", { class: "num" }, "Processing"), h("th", { class: "num" }, "Scheduled"),
            h("th", { class: "num" }, "Failed"), h("th", { class: "num" }, "Workers"),
            h("th", null, "State"), h("th", null, "Actions"))),
          queuesBody)),
        queuesEmpty),
      h("section", { class: "panel" },
        h("div", { class: "panel-head" }, h("h2", null, "Workers")),
        tableWrap(h("table", { testid: "workers-table" },
          h("thead", null, h("tr", null,
            h("th", null, "Worker"), h("th", null, "Host"), h("th", { class: "num" }, "PID"),
            h("th", null, "Queues"), h("th", null, "Handles"),
            h("th", { class: "num" }, "Busy / slots"),
            h("th", { class: "num" }, "Heartbeat age"), h("th", null, "Started"))),
          workersBody)),
        workersEmpty)));

    overviewDom = {
      stats, values, totals, alerts, throughputFigure, throughputCanvas, waitCanvas, runCanvas,
      queuesBody, workersBody, queuesEmpty, workersEmpty,
    };
    updateStats();
    drawCharts();
    if (lastQueues) renderQueues(lastQueues);
    if (lastWorkers) renderWorkers(lastWorkers);
  }

  function updateStats() {
    const data = metrics.latest;
    if (!overviewDom || !data) return;
    const s = overviewDom.stats;
    setText(s.workers.value, fmtInt(num(data.workers_live)));
    setText(s.inProgress.value, fmtInt(metric(data, "queue_processing", "jobs_in_progress")));
    setText(s.created.value, fmtInt(metric(data, "jobs_created_total", "total_jobs_created")));
    setText(s.completed.value, fmtInt(metric(data, "jobs_completed_total", "jobs_completed")));
    setText(s.failed.value, fmtInt(metric(data, "jobs_failed_total", "jobs_failed")));
    setText(s.retried.value, fmtInt(metric(data, "jobs_retried_total", "jobs_retried")));
  }

  function createQueueRow(queue) {
    const name = queue.name;
    const cells = {
      pending: h("td", { class: "num", testid: "queue-pending-" + name }),
      processing: h("td", { class: "num", testid: "queue-processing-" + name }),
      scheduled: h("td", { class: "num", testid: "queue-scheduled-" + name }),
      failed: h("td", { class: "num", testid: "queue-failed-" + name }),
      workers: h("td", { class: "num", testid: "queue-workers-" + name }),
      state: h("span", { class: "badge", testid: "queue-paused-" + name }),
      unserved: h("span", {
        class: "badge flag", testid: "queue-unserved-" + name, hidden: true,
        title: "Jobs are pending and no live worker serves this queue",
      }, "no worker"),
      unhandled: h("span", { class: "badge flag", testid: "queue-unhandled-" + name, hidden: true }),
    };
    const pause = h("button", {
      type: "button", class: "btn btn-small", testid: "pause-" + name,
      onclick: () => queueAction(name, "pause"),
    }, "Pause");
    const resume = h("button", {
      type: "button", class: "btn btn-small", testid: "resume-" + name,
      onclick: () => queueAction(name, "resume"),
    }, "Resume");
    const retry = h("button", {
      type: "button", class: "btn btn-small", testid: "retry-failed-" + name,
      title: "Retry every failed job of this queue",
      onclick: () => queueFailedAction(name, "retry"),
    }, "Retry failed");
    const purge = h("button", {
      type: "button", class: "btn btn-small btn-outline-danger", testid: "purge-failed-" + name,
      title: "Delete every failed job of this queue",
      onclick: () => queueFailedAction(name, "purge"),
    }, "Purge failed");
    const row = h("tr", { testid: "queue-row-" + name },
      h("td", null, h("a", {
        href: "#/jobs?queue=" + enc(name), testid: "queue-jobs-" + name, title: "Jobs of " + name,
      }, name), " ", h("a", {
        href: "#/queues/" + enc(name), class: "muted", testid: "queue-page-link-" + name,
        title: "Limits and counts of " + name,
      }, "limits")),
      cells.pending, cells.processing, cells.scheduled, cells.failed, cells.workers,
      h("td", null, h("div", { class: "badges" }, cells.state, cells.unserved, cells.unhandled)),
      h("td", null, h("div", { class: "actions" }, pause, resume, retry, purge)));
    row._ws = { cells, pause, resume, retry, purge };
    return row;
  }

  function updateQueueRow(row, queue) {
    const { cells, pause, resume, retry, purge } = row._ws;
    setText(cells.pending, fmtInt(queue.pending));
    setText(cells.processing, fmtInt(queue.processing));
    setText(cells.scheduled, fmtInt(queue.scheduled));
    setText(cells.failed, fmtInt(queue.failed));
    const paused = Boolean(queue.paused);
    setText(cells.state, paused ? "paused" : "active");
    cells.state.dataset.paused = String(paused);
    cells.state.className = "badge " + (paused ? "state-paused" : "state-active");
    pause.hidden = paused;
    resume.hidden = !paused;
    const noFailed = !(queue.failed > 0);
    retry.disabled = noFailed;
    purge.disabled = noFailed;
    row.dataset.failed = String(queue.failed);
    const health = queueHealth(queue);
    setText(cells.workers, health.workers === null ? "–" : fmtInt(health.workers));
    cells.unserved.hidden = !health.unserved;
    setText(cells.unhandled, "no handler: " + health.unhandled.join(", "));
    cells.unhandled.hidden = health.unhandled.length === 0;
    row.classList.toggle("row-alert", health.unserved || health.unhandled.length > 0);
  }

  /**
   * Who serves a queue: the API's own answer (`workers`, `unserved`, `unhandled_types`), else,
   * from an API without them, what the live workers' queue lists say (no handler check then).
   */
  function queueHealth(queue) {
    let workers = num(queue.workers ?? NaN);
    if (workers === null && lastWorkers) {
      workers = lastWorkers.filter((w) => Array.isArray(w.queues) && w.queues.includes(queue.name)).length;
    }
    const unserved = typeof queue.unserved === "boolean"
      ? queue.unserved : workers !== null && workers === 0 && queue.pending > 0;
    const unhandled = Array.isArray(queue.unhandled_types) ? queue.unhandled_types.map(String) : [];
    return { workers, unserved, unhandled };
  }

  function renderAlerts(queues) {
    if (!overviewDom) return;
    const items = [];
    for (const queue of queues) {
      const health = queueHealth(queue);
      if (health.unserved) {
        items.push(h("li", { class: "alert", testid: "alert-unserved-" + queue.name },
          "Queue “" + queue.name + "” has " + fmtInt(queue.pending)
          + " pending job(s) and no live worker serves it."));
      }
      if (health.unhandled.length) {
        items.push(h("li", { class: "alert", testid: "alert-unhandled-" + queue.name },
          "Queue “" + queue.name + "” holds jobs of type " + health.unhandled.join(", ")
          + " that no live worker serving it can run."));
      }
    }
    overviewDom.alerts.replaceChildren(...items);
    overviewDom.alerts.hidden = items.length === 0;
  }

  let lastQueues = null;
  let lastWorkers = null;

  function renderQueues(queues) {
    lastQueues = queues;
    if (!overviewDom) return;
    const sorted = queues.filter((q) => q && typeof q.name === "string")
      .sort((a, b) => a.name.localeCompare(b.name));
    syncRows(overviewDom.queuesBody, sorted, (q) => q.name, createQueueRow, updateQueueRow);
    overviewDom.queuesEmpty.hidden = sorted.length > 0;
    renderAlerts(sorted);
  }

  function upsertQueue(queue) {
    if (!overviewDom || !queue || typeof queue.name !== "string") return;
    for (const row of Array.from(overviewDom.queuesBody.children)) {
      if (row.dataset.key === queue.name) updateQueueRow(row, queue);
    }
  }

  function createWorkerRow(worker) {
    const id = String(worker.id);
    const cells = {
      host: h("td"),
      pid: h("td", { class: "num" }),
      queues: h("td"),
      handlers: h("td", { class: "handlers", testid: "worker-handlers-" + id }),
      slots: h("td", { class: "num", testid: "worker-slots-" + id }),
      age: h("td", { class: "num", testid: "worker-age-" + id }),
      started: h("td"),
    };
    const row = h("tr", { testid: "worker-row-" + id },
      h("td", { class: "mono", title: id }, id),
      cells.host, cells.pid, cells.queues, cells.handlers, cells.slots, cells.age, cells.started);
    row._ws = cells;
    return row;
  }

  function updateWorkerRow(row, worker) {
    const cells = row._ws;
    setText(cells.host, worker.host || "–");
    setText(cells.pid, worker.pid === undefined || worker.pid === null ? "–" : String(worker.pid));
    setText(cells.queues, Array.isArray(worker.queues) ? worker.queues.join(", ") : "–");
    const handlers = Array.isArray(worker.handlers) ? worker.handlers.map(String) : null;
    setText(cells.handlers, handlers ? handlers.join(", ") : "–");
    cells.handlers.title = handlers ? handlers.join(", ") : "";
    const { busy, ahead } = slotsOf(worker);
    setText(cells.slots, fmtInt(busy) + " / " + fmtInt(num(worker.slots_total))
      + (ahead > 0 ? " (+" + fmtInt(ahead) + " next)" : ""));
    cells.slots.title = ahead > 0 ? fmtInt(ahead) + " job(s) taken ahead, waiting for a slot" : "";
    cells.slots.dataset.busy = String(busy);
    let age = num(worker.heartbeat_age_s);
    if (age === null && worker.last_heartbeat) {
      const t = Date.parse(worker.last_heartbeat);
      age = isNaN(t) ? null : Math.max(0, (Date.now() - t) / 1000);
    }
    setText(cells.age, fmtAge(age));
    cells.age.className = "num" + (age !== null && age > 15 ? " stale" : "");
    setText(cells.started, worker.started_at ? relative(worker.started_at) : "–");
    cells.started.title = worker.started_at || "";
  }

  /**
   * Busy slots from the jobs a worker holds: while a backlog lasts its fetcher takes a job ahead
   * for each busy slot, so what it holds past its slot count is waiting, not running.
   */
  function slotsOf(worker) {
    const held = num(worker.slots_busy);
    const total = num(worker.slots_total);
    if (held === null || total === null) return { busy: held, ahead: 0 };
    return { busy: Math.min(held, total), ahead: Math.max(0, held - total) };
  }

  function renderWorkers(workers) {
    lastWorkers = workers;
    if (!overviewDom) return;
    const sorted = workers.filter((w) => w && w.id !== undefined)
      .sort((a, b) => String(a.id).localeCompare(String(b.id)));
    syncRows(overviewDom.workersBody, sorted, (w) => w.id, createWorkerRow, updateWorkerRow);
    overviewDom.workersEmpty.hidden = sorted.length > 0;
    let busy = 0;
    let slots = 0;
    for (const w of sorted) {
      busy += slotsOf(w).busy || 0;
      slots += num(w.slots_total) || 0;
    }
    setText(overviewDom.stats.busy.value, fmtInt(busy) + " / " + fmtInt(slots));
    if (lastQueues) renderQueues(lastQueues); // served or not follows the workers
  }

  async function queueAction(name, action) {
    const pausing = action === "pause";
    const outcome = await confirmed(
      pausing ? "Pause queue" : "Resume queue",
      pausing
        ? "Pause queue “" + name + "”? Workers stop taking its jobs until it is resumed; "
          + "jobs can still be enqueued."
        : "Resume queue “" + name + "”? Workers start taking its jobs again.",
      pausing ? "Pause" : "Resume", false,
      () => api("POST", "/queues/" + enc(name) + "/" + action));
    if (!outcome) return;
    upsertQueue(outcome.value);
    showNotice("Queue “" + name + "” " + (pausing ? "paused." : "resumed."));
    kickPoll();
  }

  async function queueFailedAction(name, action) {
    const retrying = action === "retry";
    const row = overviewDom
      ? Array.from(overviewDom.queuesBody.children).find((r) => r.dataset.key === name) : null;
    const count = row && row.dataset.failed ? row.dataset.failed : "all";
    const outcome = await confirmed(
      retrying ? "Retry failed jobs" : "Purge failed jobs",
      retrying
        ? "Retry " + count + " failed job(s) of queue “" + name + "”? They go back to pending "
          + "with their attempts reset."
        : "Permanently delete " + count + " failed job(s) of queue “" + name + "”? "
          + "This cannot be undone.",
      retrying ? "Retry all" : "Purge all", !retrying,
      () => api("POST", "/queues/" + enc(name) + "/failed/" + action));
    if (!outcome) return;
    const data = outcome.value || {};
    const n = retrying ? data.retried : data.purged;
    showNotice((retrying ? "Retried " : "Purged ") + fmtInt(num(n)) + " failed job(s) of “"
      + name + "”.");
    kickPoll();
  }

  // ---------------------------------------------------------------- polling

  let pollTimer = null;
  let polling = false;
  let pollAgain = false;

  async function pollOnce() {
    if (authBlocked) return;
    const onOverview = currentRoute && currentRoute.name === "overview";
    let failed = null;
    // Queues first: with auth on and no token, one 401 opens the prompt and stops the rest.
    if (onOverview) {
      try {
        const data = await api("GET", "/queues");
        renderQueues(data && Array.isArray(data.queues) ? data.queues : []);
      } catch (err) {
        failed = err;
      }
      if (authBlocked) return;
    }
    const tasks = [api("GET", "/metrics").then((data) => {
      if (!data || typeof data !== "object") {
        throw new ApiError(0, "bad_metrics", "GET /metrics did not answer JSON");
      }
      recordMetrics(data);
    })];
    if (onOverview) {
      tasks.push(api("GET", "/workers").then((data) => {
        renderWorkers(data && Array.isArray(data.workers) ? data.workers : []);
      }));
      if (Date.now() - metrics.historyAt >= TIMELINE_MS) {
        tasks.push(loadTimeline().catch((err) => {
          if (!(err instanceof ApiError && err.status === 404)) throw err; // an older API
        }));
      }
    }
    const results = await Promise.allSettled(tasks);
    for (const result of results) {
      if (result.status === "rejected" && !failed) failed = result.reason;
    }
    if (currentRoute && currentRoute.name === "overview") {
      updateStats();
      drawCharts();
    }
    if (failed) {
      if (!(failed instanceof ApiError && failed.status === 401)) {
        showError(errorMessage(failed), "poll");
      }
    } else {
      clearError("poll");
      setText($("last-updated"), "Updated " + new Date().toLocaleTimeString());
    }
  }

  async function pollLoop() {
    clearTimeout(pollTimer);
    pollTimer = null;
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    try {
      await pollOnce();
    } catch (err) {
      showError(errorMessage(err), "poll");
    } finally {
      polling = false;
    }
    if (pollAgain) {
      pollAgain = false;
      pollLoop();
      return;
    }
    pollTimer = setTimeout(pollLoop, POLL_MS);
  }

  function kickPoll() {
    pollLoop();
  }

  // ---------------------------------------------------------------- jobs list

  // For each cursor reached with "Next": the cursor of the page before it and its page number,
  // so "Prev" and the page count work however the user moves (buttons or browser history).
  const pager = { filterKey: null, prevOf: new Map(), pageOf: new Map([["", 1]]) };

  function jobsHash(params) {
    const q = new URLSearchParams();
    for (const key of ["status", "queue", "type", "limit", "cursor"]) {
      const value = params[key];
      if (value !== undefined && value !== null && value !== "") q.set(key, String(value));
    }
    const query = q.toString();
    return "#/jobs" + (query ? "?" + query : "");
  }

  function navigate(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  }

  function option(value, label, selected) {
    return h("option", { value, selected: selected ? true : undefined }, label);
  }

  function renderJobs(view, params) {
    const status = params.get("status") || "";
    const queue = params.get("queue") || "";
    const type = params.get("type") || "";
    let limit = parseInt(params.get("limit") || "", 10);
    if (!(limit > 0)) limit = DEFAULT_LIMIT;
    limit = Math.min(limit, 500);
    const cursor = params.get("cursor") || "";

    const filterKey = JSON.stringify([status, queue, type, limit]);
    if (pager.filterKey !== filterKey) {
      pager.filterKey = filterKey;
      pager.prevOf = new Map();
      pager.pageOf = new Map([["", 1]]);
    }
    const pageNumber = pager.pageOf.get(cursor);
    const prevCursor = pager.prevOf.get(cursor);

    const statusSelect = h("select", { id: "filter-status", testid: "filter-status", name: "status" },
      option("", "any status", !status),
      STATUSES.map((s) => option(s, s, s === status)));
    const queueInput = h("input", {
      id: "filter-queue", testid: "filter-queue", name: "queue", type: "text",
      list: "queue-names", placeholder: "any queue", value: queue, autocomplete: "off",
    });
    const typeInput = h("input", {
      id: "filter-type", testid: "filter-type", name: "type", type: "text",
      placeholder: "any type", value: type, autocomplete: "off",
    });
    const limitSelect = h("select", { id: "filter-limit", testid: "filter-limit", name: "limit" },
      LIMITS.concat(LIMITS.includes(limit) ? [] : [limit]).sort((a, b) => a - b)
        .map((n) => option(String(n), String(n), n === limit)));
    const datalist = h("datalist", { id: "queue-names" });

    const form = h("form", { class: "filters", testid: "jobs-filters" },
      h("div", { class: "field" }, h("label", { for: "filter-status" }, "Status"), statusSelect),
      h("div", { class: "field" }, h("label", { for: "filter-queue" }, "Queue"), queueInput, datalist),
      h("div", { class: "field" }, h("label", { for: "filter-type" }, "Type"), typeInput),
      h("div", { class: "field" }, h("label", { for: "filter-limit" }, "Per page"), limitSelect),
      h("button", { type: "submit", class: "btn btn-primary", id: "filter-apply",
        testid: "filter-apply" }, "Apply"),
      h("button", { type: "button", class: "btn", testid: "filter-reset",
        onclick: () => navigate("#/jobs") }, "Reset"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      navigate(jobsHash({
        status: statusSelect.value,
        queue: queueInput.value.trim(),
        type: typeInput.value.trim(),
        limit: limitSelect.value === String(DEFAULT_LIMIT) ? "" : limitSelect.value,
      }));
    });

    const tbody = h("tbody");
    const table = h("table", { testid: "jobs-table" },
      h("thead", null, h("tr", null,
        h("th", null, "ID"), h("th", null, "Type"), h("th", null, "Queue"),
        h("th", null, "Status"), h("th", { class: "num" }, "Attempts"),
        h("th", null, "Created"), h("th", null, "Finished"), h("th", null, "Error"))),
      tbody);
    const empty = h("p", { class: "empty", testid: "jobs-empty", hidden: true },
      "No jobs match these filters.");
    const loading = h("p", { class: "muted" }, "Loading…");

    const base = { status, queue, type, limit: limit === DEFAULT_LIMIT ? "" : limit };
    const firstBtn = h("button", {
      type: "button", class: "btn", testid: "first-page", disabled: !cursor,
      onclick: () => navigate(jobsHash(base)),
    }, "« First");
    const prevBtn = h("button", {
      type: "button", class: "btn", testid: "prev-page",
      disabled: !cursor || prevCursor === undefined,
      onclick: () => navigate(jobsHash(Object.assign({}, base, { cursor: prevCursor }))),
    }, "‹ Prev");
    const nextBtn = h("button", {
      type: "button", class: "btn", testid: "next-page", disabled: true,
    }, "Next ›");
    const pageInfo = h("span", { class: "muted", testid: "page-info" },
      pageNumber ? "Page " + pageNumber : "");
    const refresh = h("button", {
      type: "button", class: "btn btn-small", testid: "jobs-refresh",
      onclick: () => render(),
    }, "Refresh");

    view.appendChild(h("div", { testid: "jobs-view" },
      h("section", { class: "panel" },
        h("div", { class: "panel-head" }, h("h1", null, "Jobs"), refresh),
        form,
        loading,
        tableWrap(table),
        empty,
        h("div", { class: "pager" }, firstBtn, prevBtn, nextBtn, pageInfo))));

    const query = new URLSearchParams();
    if (status) query.set("status", status);
    if (queue) query.set("queue", queue);
    if (type) query.set("type", type);
    query.set("limit", String(limit));
    if (cursor) query.set("cursor", cursor);
    const token = routeToken;
    api("GET", "/jobs?" + query.toString()).then((data) => {
      if (token !== routeToken) return;
      loading.remove();
      const jobs = data && Array.isArray(data.jobs) ? data.jobs : [];
      for (const job of jobs) tbody.appendChild(jobRow(job));
      empty.hidden = jobs.length > 0;
      const next = data && data.next_cursor ? String(data.next_cursor) : "";
      nextBtn.disabled = !next;
      if (next) {
        nextBtn.addEventListener("click", () => {
          pager.prevOf.set(next, cursor);
          if (pageNumber) pager.pageOf.set(next, pageNumber + 1);
          navigate(jobsHash(Object.assign({}, base, { cursor: next })));
        });
      }
      clearError("route");
    }).catch((err) => {
      if (token !== routeToken) return;
      setText(loading, "Could not load jobs.");
      if (!(err instanceof ApiError && err.status === 401)) showError(errorMessage(err), "route");
    });

    api("GET", "/queues").then((data) => {
      const queues = data && Array.isArray(data.queues) ? data.queues : [];
      for (const q of queues) {
        if (q && typeof q.name === "string") datalist.appendChild(h("option", { value: q.name }));
      }
    }).catch(() => { /* the datalist is a convenience; the job list reports errors */ });
  }

  function jobRow(job) {
    const id = String(job.id);
    const status = String(job.status || "");
    const attempts = fmtInt(num(job.attempts)) + " / " + fmtInt(num(job.max_attempts));
    const error = job.error === null || job.error === undefined ? "" : String(job.error);
    const row = h("tr", { testid: "job-row-" + id },
      h("td", { class: "mono" },
        h("a", { href: "#/jobs/" + enc(id), testid: "job-link-" + id, title: id }, shortId(id))),
      h("td", null, String(job.type || "")),
      h("td", null, String(job.queue || "")),
      h("td", null, h("span", { class: "badge status-" + status, testid: "job-status-" + id },
        status)),
      h("td", { class: "num" }, attempts),
      h("td", { title: job.created_at || "" }, job.created_at ? relative(job.created_at) : "–"),
      h("td", { title: job.finished_at || "" }, job.finished_at ? relative(job.finished_at) : "–"),
      h("td", { class: "error-cell", title: error }, errorSummary(error)));
    return row;
  }

  // ---------------------------------------------------------------- job page

  let jobPollTimer = null;

  function stopJobPoll() {
    clearTimeout(jobPollTimer);
    jobPollTimer = null;
    if (jobWatch) jobWatch.abort();
    jobWatch = null;
  }

  // A job page whose job is still live watches GET /events?job=<id> instead of polling: the
  // API holds each request until something happens to the job (or EVENTS_HOLD, 15 s, passes)
  // and the page reloads the job once per change, at once rather than up to JOB_POLL_MS late,
  // and reads nothing while the job sits still. EventSource cannot send the bearer token, so
  // each batch is one fetch resumed from the last position. An API with the stream off (404
  // events_disabled) or any trouble falls back to the timer.
  let jobWatch = null; // the AbortController of the job page's pending GET /events

  /** One GET /events response: how many events it carried and where to resume. */
  async function eventsOnce(query, position, signal) {
    const headers = { Accept: "text/event-stream" };
    const token = getToken() || memoryToken;
    if (token) headers.Authorization = "Bearer " + token;
    const params = query + (position ? "&last_event_id=" + enc(position) : "");
    const resp = await fetch("/events?" + params, {
      headers, credentials: "omit", cache: "no-store", signal,
    });
    if (!resp.ok) throw new ApiError(resp.status, "events_" + resp.status, "GET /events failed");
    const text = await resp.text();
    const events = [];
    let last = position;
    for (const block of text.split("\n\n")) {
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) last = line.slice(4);
        else if (line.startsWith("data: ")) {
          try {
            events.push(JSON.parse(line.slice(6)));
          } catch (err) {
            events.push({});
          }
        }
      }
    }
    return { events, position: last };
  }

  /** The latest time (ms) the job record tells of: events from then on are news to the page. */
  function jobSince(job) {
    let since = 0;
    for (const name of ["created_at", "enqueued_at", "started_at", "finished_at"]) {  // not run_at: to come
      const ms = job && job[name] ? Date.parse(job[name]) : NaN;
      if (Number.isFinite(ms) && ms > since) since = ms;
    }
    return since ? String(since) : "";
  }

  /** Whether an event tells the page something new: the first watch starts at the job's
   * latest time, inclusive, so it meets the event that made the state the page shows. An
   * event's `at` is when the script appended it, a few ms after the time the job records
   * (EVENT_SLACK_MS); same status and attempt within that is the state already shown. */
  const EVENT_SLACK_MS = 100;
  function isNews(event, job, since) {
    return event.status !== job.status || event.attempt !== job.attempts
      || !(Number(event.at) <= Number(since || 0) + EVENT_SLACK_MS);
  }

  function watchJob(id, token, load, job, position) {
    const controller = new AbortController();
    jobWatch = controller;
    const since = jobSince(job);
    const step = (from) => {
      eventsOnce("job=" + enc(id), from, controller.signal).then((answer) => {
        if (token !== routeToken || controller.signal.aborted) return;
        if (answer.events.some((event) => isNews(event, job, since))) load(answer.position);
        else step(answer.position);
      }).catch(() => {
        if (token !== routeToken || controller.signal.aborted) return;
        jobWatch = null;
        jobPollTimer = setTimeout(load, JOB_POLL_MS);
      });
    };
    step(position);
  }

  const TIMESTAMPS = ["created_at", "enqueued_at", "run_at", "started_at", "finished_at"];
  const TIMESTAMP_LABELS = {
    created_at: "Created", enqueued_at: "Enqueued", run_at: "Run at", started_at: "Started",
    finished_at: "Finished",
  };

  function renderJob(view, id) {
    const fields = {};
    const dd = (key) => {
      fields[key] = h("dd", { testid: "job-" + key.replace(/_/g, "-") }, "–");
      return fields[key];
    };
    const statusBadge = h("span", { class: "badge", testid: "job-status" }, "…");
    const cancelling = h("span", {
      class: "badge flag", testid: "job-cancelling", hidden: true,
      title: "Asked to stop: it ends cancelled once its handler stops or returns",
    }, "cancelling…");
    const payload = h("pre", { class: "json", testid: "job-payload" }, "…");
    const result = h("pre", { class: "json", testid: "job-result" }, "…");
    const error = h("pre", { class: "json error-text", testid: "job-error" }, "…");
    const retry = h("button", {
      type: "button", class: "btn", id: "job-retry", testid: "job-retry", disabled: true,
      title: "Put a failed job back in its queue with attempts reset",
      onclick: () => jobAction(id, "retry"),
    }, "Retry");
    const cancel = h("button", {
      type: "button", class: "btn", id: "job-cancel", testid: "job-cancel", disabled: true,
      title: "Withdraw a job that has not started, or ask a running one to stop",
      onclick: () => jobAction(id, "cancel"),
    }, "Cancel");
    const del = h("button", {
      type: "button", class: "btn btn-outline-danger", id: "job-delete", testid: "job-delete",
      disabled: true, title: "Remove a finished job's record",
      onclick: () => jobAction(id, "delete"),
    }, "Delete");
    const notFound = h("p", { class: "empty", testid: "job-not-found", hidden: true },
      "No job with this id (it may have expired or been deleted).");
    const historyBody = h("tbody");
    const historyEmpty = h("p", { class: "empty", testid: "job-history-empty", hidden: true },
      "No attempt yet.");
    const historyPanel = h("section", { class: "panel", hidden: true },
      h("h2", null, "Attempts"),
      tableWrap(h("table", { testid: "job-history" },
        h("thead", null, h("tr", null,
          h("th", { class: "num" }, "#"), h("th", null, "Worker"), h("th", null, "Started"),
          h("th", null, "Ended"), h("th", { class: "num" }, "Took"), h("th", null, "Outcome"),
          h("th", null, "Error"))),
        historyBody)),
      historyEmpty);
    const body = h("div", { class: "stack", hidden: true },
      h("section", { class: "panel" },
        h("h2", null, "Details"),
        h("dl", { class: "kv" },
          h("dt", null, "Progress"), dd("progress"),
          h("dt", null, "Type"), dd("type"),
          h("dt", null, "Queue"), dd("queue"),
          h("dt", null, "Priority"), dd("priority"),
          h("dt", null, "Attempts"), dd("attempts"),
          h("dt", null, "Timeout"), dd("timeout"),
          h("dt", null, "Worker"), dd("worker"),
          h("dt", null, "Idempotency key"), dd("idempotency_key"),
          h("dt", null, "Parents"), dd("depends_on"),
          h("dt", null, "Children"), dd("children"),
          h("dt", null, "Batch"), dd("batch"),
          TIMESTAMPS.map((key) => [h("dt", null, TIMESTAMP_LABELS[key]), dd(key)]))),
      h("div", { class: "grid-2" },
        h("section", { class: "panel" }, h("h2", null, "Payload"), payload),
        h("section", { class: "panel" }, h("h2", null, "Result"), result)),
      h("section", { class: "panel" }, h("h2", null, "Error"), error),
      historyPanel);

    view.appendChild(h("div", { testid: "job-view" },
      h("p", null, h("a", { href: "#/jobs", testid: "job-back" }, "← All jobs")),
      h("div", { class: "detail-head" },
        h("h1", { class: "mono", testid: "job-id" }, id), statusBadge, cancelling),
      h("div", { class: "detail-actions" }, retry, cancel, del),
      notFound,
      body));

    const dom = {
      fields, statusBadge, cancelling, payload, result, error, retry, cancel, del, body, notFound,
      historyPanel, historyBody, historyEmpty,
    };
    const token = routeToken;

    // position: the last event seen (a watch resumes after it), else the job's latest time.
    const load = (position) => {
      stopJobPoll();
      api("GET", "/jobs/" + enc(id)).then((job) => {
        if (token !== routeToken) return;
        fillJob(dom, job);
        clearError("route");
        if (job && !TERMINAL.has(job.status)) {
          watchJob(id, token, load, job, typeof position === "string" ? position : jobSince(job));
        }
      }).catch((err) => {
        if (token !== routeToken) return;
        if (err instanceof ApiError && err.status === 404) {
          body.hidden = true;
          notFound.hidden = false;
          for (const b of [retry, cancel, del]) b.disabled = true;
          setText(statusBadge, "not found");
        }
        if (err instanceof ApiError && err.status === 401) return;
        showError(errorMessage(err), "route");
        if (!(err instanceof ApiError && err.status >= 400 && err.status < 500)) {
          jobPollTimer = setTimeout(load, JOB_POLL_MS * 2);
        }
      });
    };
    currentJobView = { id, dom, load };
    load();
  }

  let currentJobView = null;

  /** A job's parents or children as links to their pages ("–" for none), then a note. */
  function fillJobLinks(dd, ids, note) {
    const list = Array.isArray(ids) ? ids.filter((x) => typeof x === "string") : [];
    const key = JSON.stringify([list, note]);
    if (dd.dataset.shown === key) return;  // unchanged: keep the links (no flicker on a poll)
    dd.dataset.shown = key;
    dd.textContent = "";
    if (!list.length) {
      dd.textContent = "–";
      return;
    }
    list.forEach((id, i) => {
      if (i) dd.appendChild(document.createTextNode(", "));
      dd.appendChild(h("a", { href: "#/jobs/" + enc(id), class: "mono", testid: "job-link" }, id));
    });
    if (note) dd.appendChild(document.createTextNode(" " + note));
  }

  function dependsNote(job) {
    if (!Array.isArray(job.depends_on) || !job.depends_on.length) return "";
    const left = num(job.parents_left);
    const waiting = job.status === "waiting" && left !== null ? fmtInt(left) + " left, " : "";
    return "(" + waiting + "on failure: " + (job.on_parent_failure || "cancel") + ")";
  }

  function fillJob(dom, job) {
    if (!job || typeof job !== "object") return;
    const status = String(job.status || "");
    dom.body.hidden = false;
    dom.notFound.hidden = true;
    setText(dom.statusBadge, status);
    dom.statusBadge.className = "badge status-" + status;
    const cancelRequested = job.cancel_requested === true && status === "processing";
    dom.cancelling.hidden = !cancelRequested;
    const f = dom.fields;
    setText(f.progress, progressText(job.progress));
    setText(f.type, job.type || "–");
    setText(f.queue, job.queue || "–");
    setText(f.priority, num(job.priority) === null ? "0" : String(num(job.priority)));
    setText(f.attempts, fmtInt(num(job.attempts)) + " / " + fmtInt(num(job.max_attempts)));
    const timeout = num(job.timeout);
    setText(f.timeout, timeout === null ? "–" : timeout + "s");
    setText(f.worker, job.worker || "–");
    setText(f.idempotency_key, job.idempotency_key || "–");
    fillJobLinks(f.depends_on, job.depends_on, dependsNote(job));
    const shown = Array.isArray(job.children) ? job.children.length : 0;
    const allChildren = num(job.children_count);
    fillJobLinks(f.children, job.children,
      allChildren !== null && allChildren > shown ? "(" + fmtInt(allChildren) + " in all)" : "");
    const batch = typeof job.batch === "string" ? job.batch : "";
    if (f.batch.dataset.shown !== batch) {  // unchanged: keep the link (no flicker on a poll)
      f.batch.dataset.shown = batch;
      f.batch.replaceChildren(batch
        ? h("a", { href: "#/batches/" + enc(batch), class: "mono", testid: "job-batch-link" }, batch)
        : "–");
    }
    for (const key of TIMESTAMPS) {
      const iso = job[key];
      setText(f[key], iso ? iso + "  (" + relative(iso) + ")" : "–");
      f[key].title = iso ? fmtTime(iso) : "";
    }
    setText(dom.payload, prettyJson(job.payload));
    setText(dom.result, prettyJson(job.result === undefined ? null : job.result));
    setText(dom.error, prettyError(job.error));
    dom.error.classList.toggle("error-text", job.error !== null && job.error !== undefined);
    dom.retry.disabled = status !== "failed";
    dom.cancel.disabled = !(status === "pending" || status === "scheduled" || status === "waiting"
      || (status === "processing" && !cancelRequested));
    dom.del.disabled = !TERMINAL.has(status);
    fillHistory(dom, job);
  }

  /**
   * A handler's last report: "45% — 3 of 10 files" when its value is a fraction in [0, 1], else
   * the value as JSON, then the message; "–" before any report.
   */
  function progressText(progress) {
    if (progress === null || progress === undefined) return "–";
    if (typeof progress !== "object" || Array.isArray(progress)
      || Object.keys(progress).some((key) => key !== "value" && key !== "message")) {
      return JSON.stringify(progress);
    }
    const value = progress.value;
    let text = "";
    if (typeof value === "number" && value >= 0 && value <= 1) text = Math.round(value * 100) + "%";
    else if (value !== null && value !== undefined) text = JSON.stringify(value);
    if (typeof progress.message === "string" && progress.message) {
      text = text ? text + " — " + progress.message : progress.message;
    }
    return text || "–";
  }

  const OUTCOME_CLASS = {
    cancelled: "status-cancelled",
    completed: "status-completed", failed: "status-failed", timed_out: "status-failed",
    lost: "status-processing", running: "status-pending",
  };

  /**
   * Every attempt, oldest first, and the one running now (the server records an attempt when
   * it ends); an API without `history` leaves the panel hidden.
   */
  function fillHistory(dom, job) {
    const history = job.history;
    dom.historyPanel.hidden = !Array.isArray(history);
    if (!Array.isArray(history)) return;
    const open = new Set(); // tracebacks the reader opened stay open across refreshes
    for (const details of dom.historyBody.querySelectorAll("details[open]")) {
      open.add(details.dataset.testid);
    }
    const entries = history.filter((entry) => entry && typeof entry === "object");
    if (job.status === "processing") {
      entries.push({
        attempt: job.attempts, worker: job.worker, started_at: job.started_at, outcome: "running",
      });
    }
    dom.historyBody.replaceChildren(...entries.map((entry, index) => historyRow(entry, index + 1, open)));
    dom.historyEmpty.hidden = entries.length > 0;
  }

  function historyRow(entry, n, open) {
    const outcome = entry && entry.outcome ? String(entry.outcome) : "running";
    const started = Date.parse(entry.started_at);
    const ended = Date.parse(entry.ended_at);
    const took = isNaN(started) || isNaN(ended) ? null : Math.max(0, (ended - started) / 1000);
    const error = entry.error === null || entry.error === undefined ? "" : String(entry.error);
    const errorCell = h("td", { class: "history-error", testid: "history-error-" + n });
    if (error) errorCell.appendChild(h("div", { class: "error-line", title: error }, errorSummary(error)));
    if (entry.traceback) {
      const testid = "history-traceback-" + n;
      errorCell.appendChild(h("details", { class: "traceback", testid, open: open.has(testid) },
        h("summary", null, "Traceback"),
        h("pre", { class: "json error-text" }, String(entry.traceback))));
    }
    if (!error && !entry.traceback) errorCell.textContent = "–";
    const time = (iso) => h("td", { title: iso ? fmtTime(iso) : "" }, iso ? relative(iso) : "–");
    return h("tr", { testid: "history-row-" + n, "data-attempt": entry.attempt },
      h("td", { class: "num" }, fmtInt(num(entry.attempt))),
      h("td", { class: "mono", testid: "history-worker-" + n, title: entry.worker || "" },
        entry.worker || "–"),
      time(entry.started_at),
      time(entry.ended_at),
      h("td", { class: "num" }, fmtSeconds(took)),
      h("td", null, h("span", {
        class: "badge " + (OUTCOME_CLASS[outcome] || "status-scheduled"),
        testid: "history-outcome-" + n,
      }, outcome.replace("_", " "))),
      errorCell);
  }

  async function jobAction(id, action) {
    const copy = {
      retry: ["Retry job", "Put job " + id + " back in its queue with its attempts reset?",
        "Retry", false],
      cancel: ["Cancel job", "Cancel job " + id + "? It will not run (if it is running, it is "
        + "asked to stop and ends cancelled once its handler stops).", "Cancel job", true],
      delete: ["Delete job", "Delete job " + id + " and its record? This cannot be undone.",
        "Delete", true],
    }[action];
    const outcome = await confirmed(copy[0], copy[1], copy[2], copy[3], () => (
      action === "delete"
        ? api("DELETE", "/jobs/" + enc(id))
        : api("POST", "/jobs/" + enc(id) + "/" + action)));
    if (!outcome) return;
    if (action === "delete") {
      showNotice("Job " + id + " deleted.");
      navigate("#/jobs");
      return;
    }
    const running = outcome.value && outcome.value.status === "processing"; // 202: asked to stop
    showNotice(action === "retry" ? "Job " + id + " queued again."
      : running ? "Job " + id + " asked to stop (it is running)." : "Job " + id + " cancelled.");
    if (currentJobView && currentJobView.id === id) {
      if (outcome.value && outcome.value.id === id) fillJob(currentJobView.dom, outcome.value);
      currentJobView.load();
    }
  }

  // ---------------------------------------------------------------- schedules and queue pages
  // (issue 20) #/schedules: every schedule with its timing, next and last run, pause/resume;
  // #/queues/<name>: a queue's counts and its rate, concurrency and group limits. Each page
  // refreshes itself every POLL_MS on a timer of its own (opsTimer), stopped on every render.

  let opsTimer = null;

  function stopOpsPoll() {
    clearTimeout(opsTimer);
    opsTimer = null;
  }

  /** Loads `load` now and every POLL_MS while the page that started it is shown. */
  function opsPoll(load) {
    const token = routeToken;
    const tick = () => {
      stopOpsPoll();
      Promise.resolve(load()).then(() => {
        if (token !== routeToken) return;
        clearError("route");
        setText($("last-updated"), "Updated " + new Date().toLocaleTimeString());
      }).catch((err) => {
        if (token !== routeToken) return;
        if (err instanceof ApiError && err.status === 401) return;
        showError(errorMessage(err), "route");
      }).finally(() => {
        if (token === routeToken && !authBlocked) opsTimer = setTimeout(tick, POLL_MS);
      });
    };
    tick();
  }

  function scheduleTiming(schedule) {
    if (schedule.cron) return "cron " + schedule.cron;
    if (schedule.every) return "every " + schedule.every;
    return "–";
  }

  function timeCell(iso, testid) {
    return h("td", { class: "nowrap", testid, title: iso || "", "data-iso": iso || "" },
      iso ? fmtTime(iso) : "–", iso ? h("span", { class: "muted" }, " (" + relative(iso) + ")") : null);
  }

  function scheduleRow(schedule) {
    const id = String(schedule.id);
    const paused = schedule.paused === true;
    const job = schedule.job && typeof schedule.job === "object" ? schedule.job : {};
    const lastJob = typeof schedule.last_job_id === "string" ? schedule.last_job_id : null;
    const action = paused ? "resume" : "pause";
    return h("tr", { testid: "schedule-row-" + id },
      h("td", { class: "mono", testid: "schedule-id-" + id }, id),
      h("td", { class: "mono", testid: "schedule-timing-" + id }, scheduleTiming(schedule)),
      h("td", { testid: "schedule-timezone-" + id },
        schedule.cron ? String(schedule.timezone || "UTC") : "–"),
      h("td", { testid: "schedule-job-" + id },
        String(job.type || "–"), h("span", { class: "muted" }, " → " + String(job.queue || "default"))),
      h("td", null, h("span", {
        class: "badge " + (paused ? "state-paused" : "state-active"),
        testid: "schedule-paused-" + id, "data-paused": String(paused),
      }, paused ? "paused" : "active")),
      timeCell(schedule.next_run_at, "schedule-next-" + id),
      timeCell(schedule.last_run_at, "schedule-last-" + id),
      h("td", { class: "mono" }, lastJob
        ? h("a", { href: "#/jobs/" + enc(lastJob), testid: "schedule-last-job-" + id, title: lastJob },
          shortId(lastJob))
        : h("span", { class: "muted", testid: "schedule-last-job-" + id }, "–")),
      h("td", { class: "num", testid: "schedule-runs-" + id }, fmtInt(num(schedule.runs))),
      h("td", null, h("div", { class: "actions" }, h("button", {
        type: "button", class: "btn btn-small", testid: "schedule-" + action + "-" + id,
        onclick: () => scheduleAction(id, action),
      }, paused ? "Resume" : "Pause"))));
  }

  function renderSchedules(view) {
    const body = h("tbody");
    const empty = h("p", { class: "empty", testid: "schedules-empty", hidden: true },
      "No schedules. Create one with PUT /schedules/{id} or `workstream schedules put`.");
    view.appendChild(h("div", { testid: "schedules-view" },
      h("section", { class: "panel" },
        h("div", { class: "panel-head" }, h("h2", null, "Schedules")),
        tableWrap(h("table", { testid: "schedules-table" },
          h("thead", null, h("tr", null,
            h("th", null, "Schedule"), h("th", null, "Runs on"), h("th", null, "Time zone"),
            h("th", null, "Job"), h("th", null, "State"), h("th", null, "Next run"),
            h("th", null, "Last run"), h("th", null, "Last job"), h("th", { class: "num" }, "Runs"),
            h("th", null, "Actions"))),
          body)),
        empty)));
    const token = routeToken;
    let rowsById = new Map();
    opsPoll(() => api("GET", "/schedules").then((data) => {
      if (token !== routeToken) return;
      const schedules = data && Array.isArray(data.schedules) ? data.schedules : [];
      // A row is rebuilt only when its schedule changed, or every 10 s for its "in 5m" texts,
      // so a button is not swapped out from under the pointer on every refresh.
      const bucket = Math.floor(Date.now() / 10000);
      const rows = schedules.map((schedule) => {
        const key = bucket + JSON.stringify(schedule);
        const old = rowsById.get(String(schedule.id));
        if (old && old._key === key) return old;
        const row = scheduleRow(schedule);
        row._key = key;
        return row;
      });
      rowsById = new Map(rows.map((row, i) => [String(schedules[i].id), row]));
      body.replaceChildren(...rows);
      empty.hidden = schedules.length > 0;
    }));
  }

  async function scheduleAction(id, action) {
    const pausing = action === "pause";
    const outcome = await confirmed(
      pausing ? "Pause schedule" : "Resume schedule",
      pausing
        ? "Pause schedule “" + id + "”? It creates no jobs until it is resumed."
        : "Resume schedule “" + id + "”? It fires again from now on, without catching up.",
      pausing ? "Pause" : "Resume", false,
      () => api("POST", "/schedules/" + enc(id) + "/" + action));
    if (!outcome) return;
    showNotice("Schedule “" + id + "” " + (pausing ? "paused." : "resumed."));
    if (currentRoute && currentRoute.name === "schedules") render();
  }

  function limitText(value) {
    return value === null || value === undefined ? "none" : String(value);
  }

  function renderQueuePage(view, name) {
    const dd = (key) => h("dd", { testid: "queue-page-" + key }, "–");
    const fields = {};
    for (const key of ["pending", "processing", "scheduled", "failed", "parked", "waiting",
      "workers"]) {
      fields[key] = dd(key);
    }
    const state = h("span", { class: "badge", testid: "queue-page-paused" });
    const limit = (key) => h("dd", { testid: "limit-" + key }, "–");
    const limits = {
      rate: limit("rate"), concurrency: limit("concurrency"),
      "group-concurrency": limit("group-concurrency"), inflight: limit("inflight"),
      parked: limit("parked"),
    };
    const notFound = h("section", { class: "panel", testid: "queue-not-found", hidden: true },
      h("p", null, "No queue named “" + name + "”."));
    const body = h("div", { class: "grid-2", hidden: true },
      h("section", { class: "panel" },
        h("h2", null, "Jobs"),
        h("dl", { class: "kv" },
          h("dt", null, "Pending"), fields.pending,
          h("dt", null, "Processing"), fields.processing,
          h("dt", null, "Scheduled"), fields.scheduled,
          h("dt", null, "Failed"), fields.failed,
          h("dt", null, "Parked (group at its cap)"), fields.parked,
          h("dt", null, "Waiting for parents"), fields.waiting,
          h("dt", null, "Workers serving it"), fields.workers)),
      h("section", { class: "panel", testid: "queue-limits" },
        h("h2", null, "Limits"),
        h("dl", { class: "kv" },
          h("dt", null, "Rate"), limits.rate,
          h("dt", null, "Concurrency"), limits.concurrency,
          h("dt", null, "In flight / cap"), limits.inflight,
          h("dt", null, "Group concurrency"), limits["group-concurrency"],
          h("dt", null, "Parked jobs"), limits.parked),
        h("p", { class: "muted" }, "Limits hold across every worker; set them with PUT /queues/",
          name, "/limits or `workstream limits set ", name, "`.")));
    view.appendChild(h("div", { testid: "queue-page" },
      h("p", null, h("a", { href: "#/overview", testid: "queue-back" }, "← Overview")),
      h("div", { class: "detail-head" },
        h("h1", { testid: "queue-page-name" }, name), state,
        h("a", { href: "#/jobs?queue=" + enc(name), testid: "queue-page-jobs" }, "Jobs of " + name)),
      notFound, body));
    const token = routeToken;
    opsPoll(() => api("GET", "/queues/" + enc(name)).then((queue) => {
      if (token !== routeToken || !queue || typeof queue !== "object") return;
      body.hidden = false;
      notFound.hidden = true;
      for (const key of ["pending", "processing", "scheduled", "failed", "parked", "waiting",
        "workers"]) {
        setText(fields[key], fmtInt(num(queue[key])));
      }
      const paused = Boolean(queue.paused);
      setText(state, paused ? "paused" : "active");
      state.dataset.paused = String(paused);
      state.className = "badge " + (paused ? "state-paused" : "state-active");
      const l = queue.limits && typeof queue.limits === "object" ? queue.limits : {};
      setText(limits.rate, limitText(l.rate));
      setText(limits.concurrency, limitText(l.concurrency));
      setText(limits["group-concurrency"], limitText(l.group_concurrency));
      const inflight = fmtInt(num(queue.processing));
      setText(limits.inflight, l.concurrency ? inflight + " / " + l.concurrency : inflight + " / no cap");
      limits.inflight.classList.toggle("stale", Boolean(l.concurrency) && num(queue.processing) >= l.concurrency);
      setText(limits.parked, fmtInt(num(queue.parked)));
    }).catch((err) => {
      // 404: no such queue; 400: a name no queue can have (the API's validation_error).
      const missing = err instanceof ApiError && (err.status === 404 || err.status === 400);
      if (missing && token === routeToken) {
        body.hidden = true;
        notFound.hidden = false;
        return;
      }
      throw err;
    }));
  }

  // ---------------------------------------------------------------- batches (issue 21)
  // #/batches: every batch, newest first, with its progress; #/batches/<id>: one batch's counts,
  // progress bar, callbacks and a page of its members. Both refresh every POLL_MS (opsPoll).

  function batchCounts(batch) {
    const counts = batch && typeof batch.counts === "object" && batch.counts ? batch.counts : {};
    return {
      active: num(counts.active), completed: num(counts.completed),
      failed: num(counts.failed), cancelled: num(counts.cancelled),
    };
  }

  /** A bar split into completed / failed / cancelled segments over the batch's total. */
  function progressBar(batch, testid) {
    const total = num(batch.total);
    const counts = batchCounts(batch);
    const share = (n) => (total > 0 ? (100 * n) / total : 0).toFixed(2) + "%";
    const done = total > 0 ? (counts.completed + counts.failed + counts.cancelled) / total : 1;
    return h("div", {
      class: "progress", testid, role: "progressbar", "aria-valuemin": "0",
      "aria-valuemax": "100", "aria-valuenow": String(Math.round(done * 100)),
      "data-progress": String(done), title: Math.round(done * 100) + "% ended",
    }, ...[["completed", counts.completed], ["failed", counts.failed],
      ["cancelled", counts.cancelled]].map(([name, n]) => {
      const segment = h("span", { class: "progress-" + name });
      segment.style.width = share(n); // CSSOM, not a style attribute: the CSP forbids those
      return segment;
    }));
  }

  function batchState(batch, testid) {
    const state = String(batch.state || "open");
    return h("span", { class: "badge state-" + state, testid, "data-state": state }, state);
  }

  function batchRow(batch) {
    const id = String(batch.id);
    const counts = batchCounts(batch);
    return h("tr", { testid: "batch-row-" + id },
      h("td", { class: "mono" }, h("a", { href: "#/batches/" + enc(id), testid: "batch-link-" + id,
        title: id }, shortId(id))),
      h("td", null, batchState(batch, "batch-state-" + id)),
      h("td", { class: "num", testid: "batch-total-" + id }, fmtInt(num(batch.total))),
      h("td", { class: "num" }, fmtInt(counts.active)),
      h("td", { class: "num" }, fmtInt(counts.completed)),
      h("td", { class: "num" }, fmtInt(counts.failed)),
      h("td", { class: "num" }, fmtInt(counts.cancelled)),
      h("td", { class: "progress-cell" }, progressBar(batch, "batch-progress-" + id)),
      timeCell(batch.created_at, "batch-created-" + id));
  }

  function renderBatches(view) {
    const body = h("tbody");
    const empty = h("p", { class: "empty", testid: "batches-empty", hidden: true },
      "No batches. Create one with POST /batches.");
    view.appendChild(h("div", { testid: "batches-view" },
      h("section", { class: "panel" },
        h("div", { class: "panel-head" }, h("h2", null, "Batches")),
        tableWrap(h("table", { testid: "batches-table" },
          h("thead", null, h("tr", null,
            h("th", null, "Batch"), h("th", null, "State"), h("th", { class: "num" }, "Total"),
            h("th", { class: "num" }, "Active"), h("th", { class: "num" }, "Completed"),
            h("th", { class: "num" }, "Failed"), h("th", { class: "num" }, "Cancelled"),
            h("th", null, "Progress"), h("th", null, "Created"))),
          body)),
        empty)));
    const token = routeToken;
    opsPoll(() => api("GET", "/batches?limit=100").then((data) => {
      if (token !== routeToken) return;
      const batches = data && Array.isArray(data.batches) ? data.batches : [];
      body.replaceChildren(...batches.map(batchRow));
      empty.hidden = batches.length > 0;
    }));
  }

  function callbackText(info) {
    if (!info || typeof info !== "object") return h("span", { class: "muted" }, "–");
    const job = String(info.job_id || "");
    return h("span", null, String(info.type) + " → " + String(info.queue) + " ",
      info.created
        ? h("a", { href: "#/jobs/" + enc(job), class: "mono", title: job }, "job " + shortId(job))
        : h("span", { class: "muted" }, "(when the batch settles)"));
  }

  function renderBatch(view, id) {
    const fields = {};
    const field = (label, key) => {
      fields[key] = h("dd", { testid: "batch-" + key });
      return [h("dt", null, label), fields[key]];
    };
    const bar = h("div", { testid: "batch-bar" });
    const members = h("tbody");
    view.appendChild(h("div", { testid: "batch-page" },
      h("section", { class: "panel" },
        h("div", { class: "panel-head" },
          h("h2", null, "Batch ", h("span", { class: "mono", testid: "batch-id" }, id)),
          h("a", { href: "#/batches", class: "btn btn-small", testid: "batch-back" }, "All batches")),
        bar,
        h("dl", { class: "kv" },
          ...field("State", "state"), ...field("Total", "total"), ...field("Active", "active"),
          ...field("Completed", "completed"), ...field("Failed", "failed"),
          ...field("Cancelled", "cancelled"), ...field("By status now", "statuses"),
          ...field("on_complete", "on-complete"),
          ...field("on_success", "on-success"), ...field("Created", "created-at"),
          ...field("Settled", "settled-at"))),
      h("section", { class: "panel" },
        h("div", { class: "panel-head" }, h("h2", null, "Members (first 100)")),
        tableWrap(h("table", { testid: "batch-members" },
          h("thead", null, h("tr", null, h("th", null, "Job"), h("th", null, "Status"))),
          members)))));
    const token = routeToken;
    opsPoll(() => api("GET", "/batches/" + enc(id) + "?limit=100").then((batch) => {
      if (token !== routeToken || !batch || typeof batch !== "object") return;
      const counts = batchCounts(batch);
      bar.replaceChildren(progressBar(batch, "batch-progress"));
      fields.state.replaceChildren(batchState(batch, "batch-state-badge"));
      setText(fields.total, fmtInt(num(batch.total)));
      setText(fields.active, fmtInt(counts.active));
      setText(fields.completed, fmtInt(counts.completed));
      setText(fields.failed, fmtInt(counts.failed));
      setText(fields.cancelled, fmtInt(counts.cancelled));
      // Members by their status now (kept by the scripts, O(1) to read); null: an old record.
      const now = batch.statuses && typeof batch.statuses === "object" ? batch.statuses : null;
      fields.statuses.replaceChildren(...(now
        ? Object.keys(now).map((name) => h("span", { class: "badge status-" + name,
          testid: "batch-now-" + name, "data-count": String(num(now[name])) },
          name + " " + fmtInt(num(now[name]))))
        : [h("span", { class: "muted" }, "–")]));
      fields["on-complete"].replaceChildren(callbackText(batch.on_complete));
      fields["on-success"].replaceChildren(callbackText(batch.on_success));
      setText(fields["created-at"], batch.created_at ? fmtTime(batch.created_at) : "–");
      setText(fields["settled-at"], batch.settled_at ? fmtTime(batch.settled_at) : "–");
      const jobs = Array.isArray(batch.jobs) ? batch.jobs : [];
      members.replaceChildren(...jobs.map((job) => h("tr", { testid: "batch-member-" + job.id },
        h("td", { class: "mono" }, h("a", { href: "#/jobs/" + enc(job.id), title: job.id }, shortId(job.id))),
        h("td", null, h("span", { class: "badge status-" + (job.status || "expired") },
          job.status || "expired")))));
    }).catch((err) => {
      if (err instanceof ApiError && err.status === 404 && token === routeToken) {
        stopOpsPoll();
        view.replaceChildren(h("section", { class: "panel", testid: "batch-not-found" },
          h("h1", null, "Batch not found"),
          h("p", null, "It may have expired (RESULT_TTL after it settled). ",
            h("a", { href: "#/batches" }, "All batches."))));
        return;
      }
      throw err;
    }));
  }

  // ---------------------------------------------------------------- router

  let currentRoute = null;
  let routeToken = 0; // bumps on every render so late answers for an old view are dropped

  function decoded(part) {
    try {
      return decodeURIComponent(part);
    } catch (err) {
      return part; // keep as written
    }
  }

  function parseRoute() {
    let hash = location.hash || "";
    if (hash.startsWith("#")) hash = hash.slice(1);
    if (!hash || hash === "/") return { name: "overview" };
    const q = hash.indexOf("?");
    const path = q >= 0 ? hash.slice(0, q) : hash;
    const params = new URLSearchParams(q >= 0 ? hash.slice(q + 1) : "");
    const parts = path.split("/").filter(Boolean);
    if (parts.length === 1 && parts[0] === "overview") return { name: "overview" };
    if (parts.length === 1 && parts[0] === "jobs") return { name: "jobs", params };
    if (parts.length === 1 && parts[0] === "schedules") return { name: "schedules" };
    if (parts.length === 1 && parts[0] === "batches") return { name: "batches" };
    // A segment is percent-encoded when it was built with enc() (a named shard's id has ':').
    if (parts.length === 2 && parts[0] === "batches") return { name: "batch", id: decoded(parts[1]) };
    if (parts.length === 2 && parts[0] === "queues") return { name: "queue", queue: decoded(parts[1]) };
    if (parts.length === 2 && parts[0] === "jobs") return { name: "job", id: decoded(parts[1]) };
    return { name: "notfound", path };
  }

  function render() {
    routeToken += 1;
    stopJobPoll();
    stopOpsPoll();
    currentJobView = null;
    overviewDom = null;
    if (errorSource !== "poll") clearError(); // a new page starts clean; poll trouble persists
    const route = parseRoute();
    const wasOverview = currentRoute && currentRoute.name === "overview";
    currentRoute = route;
    for (const link of document.querySelectorAll("[data-nav]")) {
      const section = { job: "jobs", queue: "overview", batch: "batches" }[route.name] || route.name;
      const active = link.dataset.nav === section;
      link.classList.toggle("active", active);
      if (active) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const view = $("view");
    view.replaceChildren();
    if (route.name === "overview") {
      document.title = "Overview · WorkStream";
      renderOverview(view);
      if (!wasOverview) kickPoll();
    } else if (route.name === "jobs") {
      document.title = "Jobs · WorkStream";
      renderJobs(view, route.params);
    } else if (route.name === "job") {
      document.title = "Job " + shortId(route.id) + " · WorkStream";
      renderJob(view, route.id);
    } else if (route.name === "schedules") {
      document.title = "Schedules · WorkStream";
      renderSchedules(view);
    } else if (route.name === "batches") {
      document.title = "Batches · WorkStream";
      renderBatches(view);
    } else if (route.name === "batch") {
      document.title = "Batch " + shortId(route.id) + " · WorkStream";
      renderBatch(view, route.id);
    } else if (route.name === "queue") {
      document.title = "Queue " + route.queue + " · WorkStream";
      renderQueuePage(view, route.queue);
    } else {
      document.title = "Not found · WorkStream";
      view.appendChild(h("section", { class: "panel", testid: "route-not-found" },
        h("h1", null, "Page not found"),
        h("p", null, "Nothing lives at ", h("code", null, "#" + route.path), ". ",
          h("a", { href: "#/overview" }, "Go to the overview."))));
    }
    window.scrollTo(0, 0);
  }

  // ---------------------------------------------------------------- start

  function start() {
    memoryToken = getToken();
    initConfirm();
    initTokenPrompt();
    $("error-close").addEventListener("click", () => clearError());
    $("notice-close").addEventListener("click", () => { $("notice-banner").hidden = true; });
    window.addEventListener("hashchange", render);
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(drawCharts, 100);
    });
    if (!location.hash) history.replaceState(null, "", "#/overview");
    render(); // the overview starts the poll loop itself
    if (currentRoute.name !== "overview") kickPoll();
  }

  window.addEventListener("error", (event) => {
    showError("Dashboard error: " + (event.message || "unknown"), "script");
  });
  window.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    const reason = event.reason;
    if (reason instanceof ApiError && reason.status === 401) return;
    showError("Dashboard error: " + errorMessage(reason), "script");
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
