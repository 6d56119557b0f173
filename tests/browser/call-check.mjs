// SPDX-License-Identifier: GPL-3.0-or-later
// Drives Debian's Chromium (headless, through playwright-core) through the
// daemon's call check page: Call, wait for connected, press keypad digits,
// listen, hang up. Prints a JSON report on stdout; exits 1 on failure, with
// the reason in the report's "failure" and on stderr.
//
//   node call-check.mjs --url http://127.0.0.1:PORT/call-check?company=ID \
//     --wav tone-440.wav [--expect-hz 880] [--digits '12#'] [--listen 4]
//
// With --expect-failure TEXT it checks instead that the call fails before
// connecting and that the page's error message contains TEXT.
//
// Run by tests/integration/test-browser.c; needs `npm ci` here first.

import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    wav: { type: 'string' },
    'expect-hz': { type: 'string' },
    tolerance: { type: 'string', default: '5' },
    digits: { type: 'string', default: '12#' },
    listen: { type: 'string', default: '4' },
    timeout: { type: 'string', default: '60' },
    chromium: { type: 'string', default: process.env.CALLDOCKER_CHROMIUM ?? '/usr/bin/chromium' },
    screenshot: { type: 'string' },
    'expect-failure': { type: 'string' },
  },
});

if (!opts.url || !opts.wav) {
  console.error('usage: node call-check.mjs --url PAGE_URL --wav FILE [--expect-hz HZ] ' +
    '[--tolerance HZ] [--digits DIGITS] [--listen SECONDS] [--timeout SECONDS] [--chromium PATH] ' +
    '[--screenshot FILE] [--expect-failure TEXT]');
  process.exit(2);
}

const timeoutMs = Number(opts.timeout) * 1000;
const expectHz = opts['expect-hz'] ? Number(opts['expect-hz']) : null;
const tolerance = Number(opts.tolerance);
const started = Date.now();
const report = { ok: false, url: opts.url, timings: {}, console: [] };
const since = () => Date.now() - started;

// How Chromium is made to call a daemon that listens on 127.0.0.1 only
// (CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1 in the test):
// - the fake capture device plays the WAV file (looped) as the microphone,
//   and the fake UI grants the permission without asking;
// - --allow-loopback-in-peer-connection: Chromium's network list leaves out
//   loopback interfaces, so it gathers no 127.0.0.1 or ::1 candidate; on a
//   machine whose only interface is loopback it would have no candidate at
//   all. With the switch it has them. Where the machine has another address
//   too (an eth0 address, say), Chromium's checks go from both to the
//   daemon's 127.0.0.1 and it may nominate the other address as its end (it
//   ranks loopback networks last): the report's "route" says which. Either
//   way both ends are this machine's own addresses and nothing leaves it;
// - WebRtcHideLocalIpsWithMdns off: host candidates as IP addresses, never
//   random .local names, which the daemon (libnice) cannot resolve.
//   Chromium already shows IPs once the page holds a microphone; this keeps
//   the test independent of that rule;
// - the background networking flags: this machine reaches no network, and
//   Chromium's own services would only fail and retry.
const args = [
  '--no-sandbox',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${opts.wav}`,
  '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-gpu',
  '--no-first-run',
];

let browser = null;
let page = null;

async function snapshot() {
  if (!page) {
    return null;
  }
  try {
    return await page.evaluate(() => JSON.parse(JSON.stringify(window.callCheck)));
  } catch {
    return null;
  }
}

async function waitForState(states, ms) {
  await page.waitForFunction((wanted) => wanted.includes(window.callCheck?.state), states,
    { timeout: ms, polling: 100 });
  return page.evaluate(() => window.callCheck.state);
}

async function run() {
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args,
    timeout: 30000,
  });
  report.timings.launched_ms = since();
  report.browser_version = browser.version();
  const context = await browser.newContext();
  page = await context.newPage();
  page.on('console', (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => report.console.push(`pageerror: ${e.message}`));

  await page.goto(opts.url, { waitUntil: 'load', timeout: 15000 });
  await page.waitForFunction(() => window.callCheck?.state === 'idle', null, { timeout: 10000 });
  const ready = await snapshot();
  if (!ready.companyId) {
    throw new Error(`the page found no company in its address: ${ready.error}`);
  }
  report.timings.page_loaded_ms = since();

  await page.click('#call');
  const clicked = since();
  const state = await waitForState(['connected', 'ended', 'failed'], timeoutMs);
  if (opts['expect-failure'] !== undefined) {
    const s = await snapshot();
    Object.assign(report, { state: s.state, error: s.error, timeline: s.timeline });
    if (state !== 'failed' || !s.error?.includes(opts['expect-failure'])) {
      throw new Error(`expected the call to fail with "${opts['expect-failure']}", got ${state}` +
        `${s.error ? `: ${s.error}` : ''}`);
    }
    const shown = await page.textContent('#error');
    if (shown !== s.error || !(await page.isVisible('#error'))) {
      throw new Error(`the page does not show its error: ${JSON.stringify(shown)}`);
    }
    return;
  }
  if (state !== 'connected') {
    const s = await snapshot();
    throw new Error(`the call did not connect: ${state}` +
      `${s.error ? `: ${s.error}` : ''}${s.endReason ? ` (${s.endReason})` : ''}`);
  }
  report.timings.connected_ms = since() - clicked;

  // the keypad, one press at a time, as a person would
  for (const digit of opts.digits) {
    await page.click(`#keypad button[data-digit="${digit}"]`);
    await page.waitForTimeout(200);
  }
  await page.waitForFunction((d) => window.callCheck.dtmfSent === d, opts.digits,
    { timeout: 10000, polling: 100 });
  report.timings.dtmf_sent_ms = since() - clicked;

  await page.waitForTimeout(Number(opts.listen) * 1000);
  const heard = await snapshot();
  if (heard.state !== 'connected') {
    throw new Error(`the call ended while listening: ${heard.endReason ?? heard.error}`);
  }
  if (opts.screenshot) {
    await page.screenshot({ path: opts.screenshot, fullPage: true });
  }

  await page.click('#hangup');
  await waitForState(['ended', 'failed'], 15000);
  report.timings.ended_ms = since() - clicked;
  const last = await snapshot();

  Object.assign(report, {
    state: last.state,
    call_id: last.callId,
    heard_hz: heard.heardHz,
    heard_windows: heard.heardWindows,
    level_db: heard.levelDb,
    dtmf_sent: last.dtmfSent,
    end_reason: last.endReason,
    ice_connection_state: heard.iceConnectionState,
    local_candidates: heard.localCandidates,
    remote_candidates: heard.remoteCandidates,
    route: heard.route,
    packets_received: heard.packetsReceived,
    timeline: last.timeline,
  });
  if (expectHz !== null) {
    if (heard.heardHz === null || Math.abs(heard.heardHz - expectHz) > tolerance) {
      throw new Error(`expected to hear ${expectHz} Hz (±${tolerance}), heard ` +
        `${heard.heardHz ?? 'no tone'} (level ${heard.levelDb} dBFS)`);
    }
    if (heard.heardWindows < 10) {
      throw new Error(`${expectHz} Hz was heard in ${heard.heardWindows} windows only`);
    }
  }
  if (last.dtmfSent !== opts.digits) {
    throw new Error(`sent DTMF ${JSON.stringify(last.dtmfSent)}, expected ${opts.digits}`);
  }
  if (last.endReason !== 'visitor-hangup') {
    throw new Error(`the call ended with ${last.endReason}, expected visitor-hangup`);
  }
}

let exitCode = 1;
// a last resort: whatever hangs, the report comes out
const watchdog = setTimeout(async () => {
  report.failure = `gave up after ${Math.round(since() / 1000)} s`;
  console.log(JSON.stringify(report, null, 2));
  console.error(`call-check: ${report.failure}`);
  await browser?.close().catch(() => {});
  process.exit(1);
}, timeoutMs + 60000);

try {
  await run();
  report.ok = true;
  exitCode = 0;
} catch (e) {
  report.failure = e.message.split('\n')[0];
  report.page = await snapshot();
  if (opts.screenshot && page) {
    await page.screenshot({ path: opts.screenshot, fullPage: true }).catch(() => {});
  }
} finally {
  await browser?.close().catch(() => {});
  clearTimeout(watchdog);
}
report.timings.total_ms = since();
console.log(JSON.stringify(report, null, 2));
if (!report.ok) {
  console.error(`call-check: ${report.failure}`);
}
process.exit(exitCode);
