/* The line supervisor's page (OP-1, BN-1): positions, counters, the rate
 * over the last minute, chips taken off by reason, the server connection,
 * the batch's progress with the time left, and pause / resume. */
'use strict';

(() => {
  const M = Mintline;
  const STATE = {
    waiting: { icon: '…', word: 'Waiting for a chip' },
    working: { icon: '⚙', word: 'Working' },
    done: { icon: '✔', word: 'Done — take the chip off' },
    refused: { icon: '✖', word: 'Refused — take the chip off' },
    gone: { icon: '⚠', word: 'Reader not answering' },
    held: { icon: '❚❚', word: 'Held — line paused' },
  };
  /* results that leave the chip off the line (with their reason) */
  const OFF = { refused: 1, reject_write: 1, off_line: 1, left_blank: 1,
    registered_elsewhere: 1, held: 1, skipped: 1, error: 1 };
  const WORDS = { issued: 'issued', completed: 'completed', already_registered: 'already registered',
    refused: 'refused', reject_write: 'reject-write', off_line: 'off the line',
    left_blank: 'left blank', registered_elsewhere: 'registered elsewhere',
    held: 'held by another station', skipped: 'skipped', error: 'error' };
  const pos = {};		/* position -> { state, name, last, refused } */
  const issuedAt = [];		/* times (ms) of issued notes */
  const rejects = {};		/* reason -> count */
  let stats = null;

  function card(p) {
    let c = document.getElementById('pos-' + p);
    if (c) return c;
    c = M.el('li', 'pos waiting');
    c.id = 'pos-' + p;
    c.appendChild(M.el('h3'));
    const st = M.el('div', 'st');
    st.appendChild(M.el('span', 'ico')).setAttribute('aria-hidden', 'true');
    st.appendChild(M.el('span', 'word'));
    c.appendChild(st);
    c.appendChild(M.el('div', 'last'));
    const list = document.getElementById('pos');
    const after = Array.from(list.children).find((x) => Number(x.id.slice(4)) > p);
    list.insertBefore(c, after || null);
    return c;
  }

  function drawPos(p) {
    const s = pos[p];
    const c = card(p);
    /* a chip that arrived while paused waits untouched */
    const key = s.state === 'done' && s.refused ? 'refused'
      : s.state === 'working' && s.last === 'Chip arrived' && stats && stats.paused ? 'held' : s.state;
    const d = STATE[key] || STATE.waiting;
    c.className = 'pos ' + key;
    /* a reader's name; in-process, the image's file name */
    c.querySelector('h3').textContent = 'Position ' + p + (s.name ? ' · ' + s.name.split('/').pop() : '');
    c.querySelector('.ico').textContent = d.icon;
    c.querySelector('.word').textContent = d.word;
    c.querySelector('.last').textContent = s.last || '';
  }

  function fmtDur(s) {
    if (!isFinite(s) || s < 0) return '—';
    s = Math.round(s);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function perMinute(now) {
    return issuedAt.filter((t) => t > now - 60000).length;
  }

  function drawChart(now) {
    const cv = document.getElementById('rate');
    const w = cv.clientWidth || 600;
    const h = cv.clientHeight || 140;
    const dpr = window.devicePixelRatio || 1;
    if (cv.width !== Math.round(w * dpr)) { cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr); }
    const g = cv.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const buckets = new Array(12).fill(0);	/* 5 s each, oldest first */
    issuedAt.forEach((t) => {
      const age = now - t;
      if (age >= 0 && age < 60000) buckets[11 - Math.floor(age / 5000)]++;
    });
    const max = Math.max(4, ...buckets);
    const left = 34, bottom = h - 20, top = 8;
    const bw = (w - left - 8) / 12;
    g.font = '12px "DejaVu Sans", sans-serif';
    g.fillStyle = '#5b6776';
    g.strokeStyle = '#d8dee6';
    g.lineWidth = 1;
    [0, 0.5, 1].forEach((f) => {
      const y = bottom - (bottom - top) * f;
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(w - 8, y + 0.5); g.stroke();
      g.fillText(String(Math.round(max * f)), 4, y + 4);
    });
    buckets.forEach((n, i) => {
      const bh = (bottom - top) * n / max;
      g.fillStyle = i === 11 ? '#3f78c0' : '#1d4e89';
      g.fillRect(left + i * bw + 3, bottom - bh, bw - 6, bh);
    });
    g.fillStyle = '#5b6776';
    g.fillText('-60 s', left, h - 4);
    g.fillText('now', w - 36, h - 4);
  }

  function drawStats() {
    const now = Date.now();
    const rate = perMinute(now);
    document.getElementById('k-rate').textContent = rate;
    drawChart(now);
    if (!stats) return;
    const settled = stats.issued + stats.repeated + stats.skipped + stats.refused;
    document.getElementById('k-issued').textContent = stats.issued + stats.repeated;
    document.getElementById('k-rejects').textContent =
      stats.refused + stats.reject_write + stats.off_line + stats.held;
    document.getElementById('k-errors').textContent = stats.errors;
    document.getElementById('b-done').textContent = settled;
    document.getElementById('b-total').textContent = stats.notes;
    const pr = document.getElementById('b-progress');
    pr.max = Math.max(1, stats.notes);
    pr.value = settled;
    const left = stats.notes - settled;
    document.getElementById('b-eta').textContent = left <= 0 ? 'batch done'
      : stats.paused ? 'paused' : rate > 0 ? fmtDur(left / rate * 60) : '—';
    const ls = document.getElementById('line-state');
    let cls, txt;
    if (stats.paused) {
      cls = 'warn'; txt = '❚❚ Paused from this page: no chip is written until you resume.';
      M.pill('st-line', 'warn', '❚❚', 'Line paused');
    } else if (stats.server_away) {
      cls = 'bad'; txt = '⚠ Paused by itself: the server cannot be reached; no chip is written until it is back.';
      M.pill('st-line', 'bad', '⚠', 'Line waiting for the server');
    } else if (left <= 0) {
      cls = 'ok'; txt = '✔ Batch done.';
      M.pill('st-line', 'ok', '✔', 'Batch done');
    } else {
      cls = 'ok'; txt = '▶ Running.';
      M.pill('st-line', 'ok', '▶', 'Line running');
    }
    ls.className = 'line-state ' + cls;
    if (ls.textContent !== txt) ls.textContent = txt;
    document.getElementById('pause').disabled = stats.paused;
    document.getElementById('resume').disabled = !stats.paused;
  }

  function drawRejects() {
    const tb = document.querySelector('#rej tbody');
    tb.replaceChildren();
    Object.keys(rejects).sort((a, b) => rejects[b] - rejects[a]).forEach((r) => {
      const tr = M.el('tr');
      tr.appendChild(M.el('td', null, r));
      tr.appendChild(M.el('td', 'numc', String(rejects[r])));
      tb.appendChild(tr);
    });
    document.getElementById('rej-empty').hidden = Object.keys(rejects).length > 0;
  }

  M.on('config', (c) => {
    document.getElementById('b-name').textContent = c.batch.split('/').pop() + ' · ' + c.notes + ' notes';
    document.getElementById('b-name').title = c.batch;
    for (let p = 0; p < c.positions; p++) {
      if (!pos[p]) { pos[p] = { state: 'waiting' }; drawPos(p); }
    }
  });
  M.on('stats', (s) => {
    const was = stats && stats.paused;
    stats = s;
    drawStats();
    if (was !== s.paused) Object.keys(pos).forEach((p) => drawPos(Number(p)));
  });
  M.on('server', (s) => {
    if (s.state === 'connected') M.pill('st-server', 'ok', '✔', 'Server connected');
    else M.pill('st-server', 'bad', '✖', 'Server connection lost' + (s.why ? ' (' + s.why + ')' : ''));
  });
  M.on('position', (e) => {
    const s = pos[e.position] || (pos[e.position] = {});
    s.state = e.state;
    if (e.name) s.name = e.name;
    if (e.state === 'working') { s.refused = false; s.last = 'Chip arrived'; }
    if (e.state === 'waiting' && s.last && s.last !== 'Chip arrived') s.last = 'Last: ' + s.last.replace(/^Last: /, '');
    drawPos(e.position);
  });
  M.on('result', (r) => {
    const s = pos[r.position] || (pos[r.position] = { state: 'working' });
    const word = WORDS[r.result] || r.result;
    s.last = (r.note ? r.note + ' ' : '') + (r.chip ? 'chip ' + r.chip + ': ' : '') + word +
      (r.reason ? ' — ' + r.reason : '');
    s.refused = !!OFF[r.result];
    if (r.result === 'issued') issuedAt.push(r.t);
    if (OFF[r.result]) {
      const why = word + (r.reason ? ': ' + r.reason : '');
      rejects[why] = (rejects[why] || 0) + 1;
      drawRejects();
    }
    drawPos(r.position);
    drawStats();
  });

  async function act(what) {
    const b = document.getElementById(what);
    b.disabled = true;
    try {
      if (!(await M.post(what))) {
        document.getElementById('line-state').textContent = 'The station refused "' + what + '" (reload the page).';
      }
    } catch (e) {
      document.getElementById('line-state').textContent = 'The station did not answer.';
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('pause').addEventListener('click', () => act('pause'));
    document.getElementById('resume').addEventListener('click', () => act('resume'));
    drawRejects();
    drawChart(Date.now());
    setInterval(drawStats, 1000);
  });
})();
