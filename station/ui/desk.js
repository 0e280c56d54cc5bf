/* The verification desk's page (OP-1, BN-8): the verdict of the note in
 * the reader, the session's history and counts, the reader and server
 * connection.  Everything comes from the station's event stream. */
'use strict';

(() => {
  const M = Mintline;
  const VERDICT = {
    GENUINE: { icon: '✔', word: 'GENUINE',
      todo: 'The note may be accepted.' },
    COUNTERFEIT: { icon: '✖', word: 'COUNTERFEIT',
      todo: 'Keep the note. Do not hand it back; follow the counterfeit procedure.' },
    BLANK: { icon: '○', word: 'BLANK',
      todo: 'No note was ever written to this chip. Keep it aside and tell the supervisor.' },
    ERROR: { icon: '!', word: 'NO VERDICT',
      todo: 'Keep the note aside, tell the supervisor, and present it again once the server is back.' },
  };
  /* The station's reasons in plain words. */
  const PLAIN = {
    'unauthorized writer': 'Written by a station that is not allowed to issue notes.',
    'chip key mismatch or clone': 'The chip is not the one this note was issued on (a copied chip).',
    'unregistered serial': 'This serial number was never issued.',
    'feature mismatch': 'The note\u2019s data does not match what was issued (altered).',
    'not a note chip': 'This is not a banknote chip.',
    'blank chip': 'The chip carries no note.',
    'server unreachable': 'No verdict: the registry server cannot be reached.',
  };
  const history = [];		/* newest last */
  const counts = { GENUINE: 0, COUNTERFEIT: 0, BLANK: 0, ERROR: 0 };
  const positions = {};		/* position -> state */
  let mode = 'online';
  let lastPos = null;		/* position of the verdict shown */

  function plain(c) {
    if (c.verdict === 'GENUINE') {
      return c.two_chips ? 'Registered note. Note: its serial was also presented by another chip.'
        : 'Registered note, issued by an authorised station.';
    }
    return PLAIN[c.reason] || c.reason || '';
  }

  function how(c) {
    return c.online ? 'online (registry)' : 'offline (chip alone)';
  }

  function serial(c) {
    return c.prefix ? c.prefix + ' ' + c.serial : '—';
  }

  function showVerdict(c) {
    const v = VERDICT[c.verdict] || VERDICT.ERROR;
    const box = document.getElementById('verdict');
    box.className = 'verdict v-' + c.verdict;
    box.querySelector('.v-icon').textContent = v.icon;
    box.querySelector('.v-word').textContent = v.word;
    let reason = plain(c);
    if (c.detail && c.verdict !== 'ERROR') reason += ' (' + c.detail + ')';
    box.querySelector('.v-reason').textContent = reason;
    box.querySelector('.v-todo').textContent = v.todo;
    document.getElementById('n-serial').textContent = serial(c);
    document.getElementById('n-chk').textContent = c.chk || '—';
    document.getElementById('n-chip').textContent = c.chip || '—';
    document.getElementById('n-kfp').textContent = c.kfp || '—';
    document.getElementById('n-how').textContent = how(c);
    document.getElementById('n-time').textContent = M.datetime(c.t);
    lastPos = c.position;
  }

  function showWaiting() {
    const box = document.getElementById('verdict');
    const last = history[history.length - 1];
    box.className = 'verdict v-wait';
    box.querySelector('.v-icon').textContent = '…';
    box.querySelector('.v-word').textContent = 'Waiting';
    box.querySelector('.v-reason').textContent = 'Present the next note to the reader.';
    box.querySelector('.v-todo').textContent = last
      ? 'Last: ' + (VERDICT[last.verdict] || VERDICT.ERROR).word + (last.prefix ? ' ' + serial(last) : '') +
        ' at ' + M.time(last.t)
      : '';
    ['n-serial', 'n-chk', 'n-chip', 'n-kfp', 'n-how', 'n-time'].forEach((id) => {
      document.getElementById(id).textContent = '—';
    });
    lastPos = null;
  }

  function row(c) {
    const v = VERDICT[c.verdict] || VERDICT.ERROR;
    const tr = M.el('tr');
    tr.dataset.verdict = c.verdict;
    const t = M.el('td', null, M.time(c.t));
    t.title = M.datetime(c.t);
    tr.appendChild(t);
    const td = M.el('td');
    const tag = M.el('span', 'tag ' + c.verdict);
    tag.appendChild(M.el('span', null, v.icon)).setAttribute('aria-hidden', 'true');
    tag.appendChild(document.createTextNode(v.word));
    td.appendChild(tag);
    tr.appendChild(td);
    tr.appendChild(M.el('td', 'mono', serial(c)));
    tr.appendChild(M.el('td', null, c.verdict === 'GENUINE' ? '' : plain(c)));
    tr.appendChild(M.el('td', 'mono col-chip', c.chip || ''));
    tr.appendChild(M.el('td', 'col-how', c.online ? 'online' : 'offline'));
    return tr;
  }

  function applyFilter() {
    const f = document.getElementById('filter').value;
    let shown = 0;
    document.querySelectorAll('#hist tbody tr').forEach((tr) => {
      tr.hidden = f !== '' && tr.dataset.verdict !== f;
      if (!tr.hidden) shown++;
    });
    document.getElementById('hist-empty').hidden = shown > 0;
    document.getElementById('hist-empty').textContent = history.length ? 'No check with this verdict.' : 'No note checked yet.';
  }

  function csvField(s) {
    s = String(s === undefined || s === null ? '' : s);
    /* a cell starting with = + - @ is text, not a formula */
    if (/^[=+\-@]/.test(s)) s = "'" + s;
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  /* The session's history as CSV (oldest first), every check. */
  function csv() {
    const lines = ['time,verdict,prefix,serial,check_code,chip,reason,detail,checked,position,ms'];
    history.forEach((c) => {
      lines.push([new Date(c.t).toISOString(), c.verdict, c.prefix, c.serial, c.chk, c.chip,
        c.reason, c.detail, c.online ? 'online' : 'offline', c.position, c.ms].map(csvField).join(','));
    });
    return lines.join('\r\n') + '\r\n';
  }

  function download() {
    const blob = new Blob([csv()], { type: 'text/csv' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'desk-' + M.datetime(Date.now()).replace(/[ :]/g, '-') + '.csv';
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function readers() {
    const st = Object.values(positions);
    if (st.length === 0) return;
    const gone = st.filter((s) => s === 'gone').length;
    if (gone) {
      M.pill('st-reader', 'bad', '✖', 'Reader not answering (' + gone + ' of ' + st.length + ')');
    } else if (st.some((s) => s === 'working' || s === 'done')) {
      M.pill('st-reader', 'ok', '▣', 'Note on the reader');
    } else {
      M.pill('st-reader', 'ok', '✔', 'Reader ready');
    }
  }

  M.on('config', (c) => {
    mode = c.mode;
    if (mode === 'offline') {
      M.pill('st-mode', 'warn', '⚠', 'Offline (chip alone)');
      M.pill('st-server', '', '–', 'No server');
    } else {
      M.pill('st-mode', 'ok', '✔', 'Online (registry)');
    }
  });
  M.on('server', (s) => {
    if (mode === 'offline') return;
    if (s.state === 'connected') M.pill('st-server', 'ok', '✔', 'Server connected');
    else M.pill('st-server', 'bad', '✖', 'Server connection lost' + (s.why ? ' (' + s.why + ')' : ''));
  });
  M.on('position', (p) => {
    positions[p.position] = p.state;
    readers();
    if (p.state === 'waiting' && lastPos === p.position) showWaiting();
  });
  M.on('check', (c) => {
    history.push(c);
    counts[c.verdict] = (counts[c.verdict] || 0) + 1;
    const el = document.getElementById('c-' + c.verdict);
    if (el) el.textContent = counts[c.verdict];
    document.querySelector('#hist tbody').prepend(row(c));
    applyFilter();
    showVerdict(c);
  });

  document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('filter').addEventListener('change', applyFilter);
    document.getElementById('csv').addEventListener('click', download);
  });
  /* for the browser test and for scripts: the CSV the button saves */
  window.mintlineDeskCsv = csv;
})();
