// SPDX-License-Identifier: GPL-3.0-or-later
// The call check: calls a company's agents from this browser exactly as the
// website widget does (docs/signaling.md), and measures what it hears.
//
// The steps: the microphone (getUserMedia), a visitor session
// (POST /api/v1/widget/session), the signaling WebSocket (/api/v1/ws: auth,
// call.start), one RTCPeerConnection offered to the call center with trickled
// ICE candidates both ways, call.state updates until the call ends. The
// keypad plays RFC 4733 events on the audio sender (RTCDTMFSender); the
// received audio goes to an <audio> element and a Web Audio analyser, which
// finds the dominant frequency. Everything measured is in window.callCheck,
// for tests.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PROBLEM = 'urn:calldocker:problem:';

// The analyser: 8192-point FFT (about 5.9 Hz per bin at 48 kHz), looked at
// every 100 ms; a window counts when its peak stands well above the rest.
const FFT_SIZE = 8192;
const ANALYSIS_INTERVAL_MS = 100;
const MIN_HZ = 50;
const MAX_HZ = 4000;
const MIN_LEVEL_DB = -70; // quieter than this is silence
const MIN_PROMINENCE_DB = 20; // the peak over the median bin
const RECENT_WINDOWS = 20; // heardHz is the median of these

// DTMF as RTCDTMFSender plays it: 100 ms tones, 70 ms apart.
const DTMF_DURATION_MS = 100;
const DTMF_GAP_MS = 70;

const STATS_INTERVAL_MS = 1000;

/** What the page knows, for people (the page) and tests (window.callCheck). */
const check = {
  state: 'idle', // idle, starting, queued, ringing, connected, ended, failed
  companyId: null,
  callId: null,
  position: null, // place in the queue while queued
  heardHz: null, // dominant frequency heard, median of the recent windows
  heardWindows: 0, // analysis windows with a clear tone
  levelDb: null, // level of what is heard, dBFS
  endReason: null,
  endDetail: null,
  error: null,
  dtmfSent: '', // digits played out on the sender
  iceConnectionState: 'new',
  connectionState: 'new',
  localCandidates: 0,
  remoteCandidates: 0,
  route: null, // the candidate pair in use: {local, remote, rttMs}
  packetsReceived: 0,
  timeline: [], // {ms, what}: milliseconds since Call was pressed
};
window.callCheck = check;

const $ = (id) => document.getElementById(id);
const ui = {
  company: $('company'),
  call: $('call'),
  hangup: $('hangup'),
  status: $('status'),
  error: $('error'),
  keypad: $('keypad'),
  dtmfSent: $('dtmf-sent'),
  heard: $('heard'),
  level: $('level'),
  levelText: $('level-text'),
  connection: $('connection'),
  remote: $('remote'),
};

// One call at a time; all of it is reset by teardown().
let call = null;
let startedAt = 0;

function note(what) {
  check.timeline.push({ ms: Math.round(performance.now() - startedAt), what });
}

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(text) {
  check.error = text;
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

function setState(state) {
  check.state = state;
  note(`state ${state}`);
  const live = ['starting', 'queued', 'ringing', 'connected'].includes(state);
  ui.call.disabled = live || !check.companyId;
  ui.hangup.disabled = !live;
  ui.keypad.disabled = state !== 'connected';
}

function updateConnection() {
  const route = check.route
    ? `; from ${check.route.local} to ${check.route.remote}, round trip ${check.route.rttMs} ms, ` +
      `${check.packetsReceived} packets received`
    : '';
  ui.connection.textContent = `ICE ${check.iceConnectionState}, peer ${check.connectionState}` +
    ` (candidates: ${check.localCandidates} sent, ${check.remoteCandidates} received)${route}`;
}

function describeCandidate(c) {
  return c ? `${c.candidateType} ${c.address ?? c.ip}:${c.port} ${c.protocol}` : '?';
}

// The candidate pair the audio takes (a relay one goes through TURN), and
// how much arrives.
async function readStats(c) {
  const stats = await c.pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      pair = stats.get(r.selectedCandidatePairId);
    } else if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      check.packetsReceived = r.packetsReceived ?? 0;
    }
  });
  if (pair && c === call) {
    check.route = {
      local: describeCandidate(stats.get(pair.localCandidateId)),
      remote: describeCandidate(stats.get(pair.remoteCandidateId)),
      rttMs: Math.round((pair.currentRoundTripTime ?? 0) * 1000),
    };
    updateConnection();
  }
}

const END_REASONS = {
  'visitor-hangup': 'you hung up',
  'agent-hangup': 'the agent hung up',
  'no-agent': 'no agent took the call in time',
  'ice-failed': 'the audio could not connect (ICE failed): check the STUN/TURN settings and ' +
    'that UDP reaches the call center',
  'dtls-failed': 'the audio could not be secured (DTLS failed)',
  'media-timeout': 'no audio arrived for too long',
  'signaling-lost': 'a party\'s connection was lost',
  'pipeline-error': 'the call center\'s media failed',
  shutdown: 'the call center is restarting',
};

// ---- signaling ----

function send(message) {
  if (call?.ws?.readyState === WebSocket.OPEN) {
    call.ws.send(JSON.stringify(message));
  }
}

function sendCandidate(candidate) {
  if (!call) {
    return;
  }
  if (!call.offerSent) {
    call.pendingLocal.push(candidate);
    return;
  }
  const message = {
    type: 'ice.candidate',
    call_id: check.callId,
    // an empty candidate tells that gathering is done
    candidate: candidate ? candidate.candidate : '',
    sdp_mline_index: candidate?.sdpMLineIndex ?? 0,
  };
  if (typeof candidate?.sdpMid === 'string' && candidate.sdpMid.length <= 64) {
    message.sdp_mid = candidate.sdpMid;
  }
  if (candidate?.candidate) {
    check.localCandidates++;
    updateConnection();
  }
  send(message);
}

async function addRemoteCandidate(c, m) {
  if (!m.candidate) {
    return;
  }
  if (!c.pc?.remoteDescription) {
    c.pendingRemote.push(m);
    return;
  }
  try {
    await c.pc.addIceCandidate({ candidate: m.candidate, sdpMLineIndex: m.sdp_mline_index ?? 0 });
    check.remoteCandidates++;
    updateConnection();
  } catch (e) {
    note(`remote candidate refused: ${e.message}`);
  }
}

async function applyAnswer(c, sdp) {
  try {
    await c.pc.setRemoteDescription({ type: 'answer', sdp });
  } catch (e) {
    if (c === call) {
      fail(`The call center's answer was not accepted by this browser: ${e.message}`);
    }
    return;
  }
  note('answer applied');
  for (const m of c.pendingRemote.splice(0)) {
    await addRemoteCandidate(c, m);
  }
}

function onCallState(m) {
  switch (m.state) {
    case 'queued':
      check.position = m.position ?? null;
      setStatus(`Waiting in the queue${m.position ? ` (position ${m.position})` : ''}…`);
      break;
    case 'ringing':
      setStatus('Ringing an agent…');
      break;
    case 'connected':
      setStatus('Connected: you are talking to an agent. The keypad sends tones.');
      break;
    case 'ended':
      endCall(m.reason ?? 'unknown', m.detail ?? null);
      return;
    default:
      break;
  }
  setState(m.state);
}

function onMessage(event) {
  if (!call || call.ws !== event.target) {
    return;
  }
  let m;
  try {
    m = JSON.parse(event.data);
  } catch {
    return;
  }
  const ours = m.call_id && m.call_id === check.callId;
  switch (m.type) {
    case 'auth.ok':
      note('signed in');
      setStatus('Starting the call…');
      send({ type: 'call.start', page: location.href.slice(0, 2000) });
      break;
    case 'call.created':
      check.callId = m.call_id;
      note('call created');
      startMedia().catch((e) => fail(`The call's audio could not start: ${e.message}`));
      break;
    case 'call.state':
      if (ours) {
        onCallState(m);
      }
      break;
    case 'sdp.answer':
      if (ours && call.pc) {
        applyAnswer(call, m.sdp);
      }
      break;
    case 'ice.candidate':
      if (ours) {
        addRemoteCandidate(call, m);
      }
      break;
    case 'error':
      note(`error ${m.code} for ${m.in_reply_to}: ${m.detail}`);
      if (m.in_reply_to === 'call.start' || m.in_reply_to === 'sdp.offer') {
        fail(`The call center refused the call (${m.code}): ${m.detail}`);
      } else {
        showError(`The call center said: ${m.detail} (${m.code})`);
      }
      break;
    default:
      break;
  }
}

function onClose(event) {
  if (!call || call.ws !== event.target) {
    return;
  }
  const reasons = {
    4401: 'the visitor session was refused or expired',
    4408: 'the call center did not get the session in time',
    4429: 'too many messages',
    1001: 'the call center is going away (restarting)',
    1006: 'the connection was lost',
  };
  const why = reasons[event.code] ?? `code ${event.code}`;
  fail(`The connection to the call center closed: ${why}.`);
}

function openSignaling(session) {
  const url = new URL('/api/v1/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url);
  call.ws = ws;
  ws.addEventListener('open', () => {
    note('signaling open');
    send({ type: 'auth', token: session.visitor_token });
  });
  ws.addEventListener('message', onMessage);
  ws.addEventListener('close', onClose);
}

// ---- the visitor session ----

async function openSession(companyId) {
  let response;
  try {
    response = await fetch('/api/v1/widget/session', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ company_id: companyId }),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new Error(`The call center cannot be reached: ${e.message}`);
  }
  if (response.ok) {
    return response.json();
  }
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    // not a problem document: the status says enough
  }
  const type = (problem.type ?? '').replace(PROBLEM, '');
  const detail = problem.detail ?? response.statusText;
  if (type === 'forbidden') {
    throw new Error(`This company does not allow calls from ${location.origin}: add it to the ` +
      'company\'s allowed origins.');
  }
  if (type === 'account-disabled') {
    throw new Error(`This company does not take calls: ${detail}`);
  }
  if (response.status === 404) {
    throw new Error('There is no such company: check the company id in the address.');
  }
  if (response.status === 429) {
    throw new Error('Too many call attempts from this address: wait a minute and try again.');
  }
  throw new Error(`The call center refused the session (HTTP ${response.status}): ${detail}`);
}

// ---- media ----

function microphoneError(e) {
  switch (e.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Microphone access was denied: allow the microphone for this site and try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No microphone was found: connect one and try again.';
    case 'NotReadableError':
      return 'The microphone cannot be opened: another application may be using it.';
    default:
      return `The microphone cannot be used: ${e.message}`;
  }
}

async function startMedia() {
  const c = call;
  const pc = new RTCPeerConnection({ iceServers: c.session.ice_servers ?? [] });
  c.pc = pc;
  pc.addEventListener('icecandidate', (e) => sendCandidate(e.candidate));
  pc.addEventListener('iceconnectionstatechange', () => {
    check.iceConnectionState = pc.iceConnectionState;
    note(`ice ${pc.iceConnectionState}`);
    updateConnection();
    if (pc.iceConnectionState === 'connected' && !c.statsTimer) {
      c.statsTimer = setInterval(() => readStats(c).catch(() => {}), STATS_INTERVAL_MS);
      readStats(c).catch(() => {});
    }
  });
  pc.addEventListener('connectionstatechange', () => {
    check.connectionState = pc.connectionState;
    note(`peer ${pc.connectionState}`);
    updateConnection();
  });
  pc.addEventListener('track', (e) => {
    if (c === call) {
      listen(e.streams[0] ?? new MediaStream([e.track]));
    }
  });
  for (const track of c.microphone.getAudioTracks()) {
    c.sender = pc.addTrack(track, c.microphone);
  }
  if (c.sender?.dtmf) {
    c.sender.dtmf.addEventListener('tonechange', (e) => {
      if (e.tone) {
        check.dtmfSent += e.tone;
        ui.dtmfSent.textContent = check.dtmfSent;
      }
    });
  }
  await pc.setLocalDescription(await pc.createOffer());
  if (c !== call) {
    return;
  }
  send({ type: 'sdp.offer', call_id: check.callId, sdp: pc.localDescription.sdp });
  note('offer sent');
  c.offerSent = true;
  for (const candidate of c.pendingLocal.splice(0)) {
    sendCandidate(candidate);
  }
}

// Parabolic interpolation over the peak bin and its neighbours (in dB, as a
// Gaussian fit): the frequency to a fraction of a bin.
function refinedPeak(bins, k, binHz) {
  const a = bins[k - 1];
  const b = bins[k];
  const c = bins[k + 1];
  const denominator = a - 2 * b + c;
  const offset = Number.isFinite(denominator) && denominator !== 0 ? (0.5 * (a - c)) / denominator : 0;
  return (k + Math.max(-0.5, Math.min(0.5, offset))) * binHz;
}

function median(values) {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function analyse() {
  const { analyser, context, spectrum, samples } = call.listener;
  analyser.getFloatTimeDomainData(samples);
  let power = 0;
  for (const s of samples) {
    power += s * s;
  }
  const level = 10 * Math.log10(power / samples.length || 1e-12);
  check.levelDb = Math.round(level * 10) / 10;
  ui.level.value = Math.max(-100, level);
  ui.levelText.textContent = `${check.levelDb.toFixed(1)} dBFS`;
  if (level < MIN_LEVEL_DB) {
    return;
  }

  analyser.getFloatFrequencyData(spectrum);
  const binHz = context.sampleRate / analyser.fftSize;
  const first = Math.max(1, Math.ceil(MIN_HZ / binHz));
  const last = Math.min(spectrum.length - 2, Math.floor(MAX_HZ / binHz));
  let peak = first;
  for (let k = first; k <= last; k++) {
    if (spectrum[k] > spectrum[peak]) {
      peak = k;
    }
  }
  const floor = median(spectrum.subarray(first, last + 1));
  if (!Number.isFinite(spectrum[peak]) || spectrum[peak] - floor < MIN_PROMINENCE_DB) {
    return;
  }
  call.listener.recent.push(refinedPeak(spectrum, peak, binHz));
  if (call.listener.recent.length > RECENT_WINDOWS) {
    call.listener.recent.shift();
  }
  check.heardWindows++;
  check.heardHz = Math.round(median(call.listener.recent) * 10) / 10;
  ui.heard.textContent = `${check.heardHz.toFixed(1)} Hz`;
}

function listen(stream) {
  if (call.listener) {
    return;
  }
  note('audio received');
  // Chromium feeds a remote WebRTC stream to Web Audio only while a media
  // element plays it; the element is also how the person hears the agent.
  ui.remote.srcObject = stream;
  ui.remote.play().catch(() => {});
  const context = call.audioContext;
  const analyser = context.createAnalyser();
  analyser.fftSize = FFT_SIZE;
  analyser.smoothingTimeConstant = 0;
  context.createMediaStreamSource(stream).connect(analyser);
  call.listener = {
    context,
    analyser,
    spectrum: new Float32Array(analyser.frequencyBinCount),
    samples: new Float32Array(analyser.fftSize),
    recent: [],
    timer: setInterval(analyse, ANALYSIS_INTERVAL_MS),
  };
}

// ---- the call's life ----

function teardown() {
  if (!call) {
    return;
  }
  const old = call;
  call = null;
  if (old.listener) {
    clearInterval(old.listener.timer);
  }
  clearInterval(old.statsTimer);
  if (old.ws) {
    old.ws.removeEventListener('close', onClose);
    old.ws.close(1000, 'done');
  }
  old.pc?.close();
  old.microphone?.getTracks().forEach((t) => t.stop());
  old.audioContext?.close();
  ui.remote.srcObject = null;
}

function endCall(reason, detail) {
  check.endReason = reason;
  check.endDetail = detail;
  const why = END_REASONS[reason] ?? reason;
  setStatus(`The call ended: ${why}.`);
  setState('ended');
  teardown();
}

function fail(message) {
  if (!call) {
    return;
  }
  showError(message);
  setStatus('The call check failed.');
  setState('failed');
  teardown();
}

async function start() {
  startedAt = performance.now();
  Object.assign(check, {
    callId: null,
    position: null,
    heardHz: null,
    heardWindows: 0,
    levelDb: null,
    endReason: null,
    endDetail: null,
    dtmfSent: '',
    iceConnectionState: 'new',
    connectionState: 'new',
    localCandidates: 0,
    remoteCandidates: 0,
    route: null,
    packetsReceived: 0,
    timeline: [],
  });
  showError('');
  ui.dtmfSent.textContent = '';
  ui.heard.textContent = '—';
  call = { pendingLocal: [], pendingRemote: [], offerSent: false };
  setState('starting');

  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    fail('This page needs a secure connection (HTTPS, or localhost) to use the microphone.');
    return;
  }
  if (!window.RTCPeerConnection) {
    fail('This browser cannot make WebRTC calls.');
    return;
  }
  // made while the click still counts as a user gesture, so that it runs
  call.audioContext = new AudioContext();
  const mine = call;

  setStatus('Asking for the microphone…');
  try {
    mine.microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    fail(microphoneError(e));
    return;
  }
  if (call !== mine) {
    mine.microphone.getTracks().forEach((t) => t.stop());
    return;
  }
  note('microphone open');

  setStatus('Opening a visitor session…');
  try {
    mine.session = await openSession(check.companyId);
  } catch (e) {
    fail(e.message);
    return;
  }
  if (call !== mine) {
    return;
  }
  note('session open');
  setStatus('Connecting to the call center…');
  openSignaling(mine.session);
}

function hangUp() {
  if (!call) {
    return;
  }
  if (check.callId && call.ws?.readyState === WebSocket.OPEN) {
    setStatus('Hanging up…');
    send({ type: 'hangup', call_id: check.callId });
    return;
  }
  // nothing to hang up on the server yet
  endCall('cancelled', null);
}

function sendDigit(digit) {
  const dtmf = call?.sender?.dtmf;
  if (check.state !== 'connected' || !dtmf) {
    return;
  }
  if (!dtmf.canInsertDTMF) {
    showError('Tones cannot be sent on this call (the call center did not accept telephone-event).');
    return;
  }
  // what is still queued plays first: insertDTMF() replaces the queue
  dtmf.insertDTMF(dtmf.toneBuffer + digit, DTMF_DURATION_MS, DTMF_GAP_MS);
  note(`dtmf ${digit}`);
}

function init() {
  const company = new URLSearchParams(location.search).get('company') ?? '';
  if (UUID.test(company)) {
    check.companyId = company.toLowerCase();
    ui.company.textContent = check.companyId;
    setStatus('Ready: press Call to call an agent.');
  } else {
    ui.company.textContent = company ? `${company} (not a company id)` : '(none)';
    setStatus('No company to call.');
    showError('Open this page as /call-check?company=COMPANY_ID, with your company\'s id.');
  }
  setState('idle');
  updateConnection();
  ui.call.addEventListener('click', () => {
    start().catch((e) => fail(`Unexpected error: ${e.message}`));
  });
  ui.hangup.addEventListener('click', hangUp);
  for (const button of ui.keypad.querySelectorAll('button[data-digit]')) {
    button.addEventListener('click', () => sendDigit(button.dataset.digit));
  }
  document.addEventListener('keydown', (e) => {
    if (/^[0-9*#]$/.test(e.key) && !e.altKey && !e.ctrlKey && !e.metaKey) {
      sendDigit(e.key);
    }
  });
}

init();
