/* mintline station pages: the event stream, the clock and small helpers
 * shared by the desk and the line page.  No data is ever put in the page
 * as HTML: text only (textContent). */
'use strict';

const Mintline = (() => {
  const handlers = {};
  let token = '';
  let es = null;

  function on(type, fn) {
    (handlers[type] = handlers[type] || []).push(fn);
  }

  function emit(ev) {
    (handlers[ev.type] || []).forEach((fn) => fn(ev));
    (handlers['*'] || []).forEach((fn) => fn(ev));
  }

  /* A status pill: state "ok" / "bad" / "warn" / "" with an icon and a word. */
  function pill(id, state, icon, text) {
    const p = document.getElementById(id);
    if (!p) return;
    p.className = 'pill ' + state;
    p.querySelector('.ico').textContent = icon;
    p.querySelector('.txt').textContent = text;
  }

  function connect() {
    es = new EventSource('/events');
    es.onopen = () => pill('st-page', 'ok', '✔', 'Station connected');
    es.onerror = () => pill('st-page', 'bad', '✖', 'Station not answering (retrying)');
    es.onmessage = (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch (e) {
        return;
      }
      if (ev.type === 'hello') token = ev.token || '';
      emit(ev);
    };
  }

  /* POST /api/ACTION with the per-start token; resolves to true on 200. */
  async function post(action) {
    const r = await fetch('/api/' + action, {
      method: 'POST',
      headers: { 'X-Mintline-Token': token },
      cache: 'no-store',
      credentials: 'same-origin',
    });
    return r.ok;
  }

  function two(n) { return String(n).padStart(2, '0'); }
  function time(ms) {
    const d = new Date(ms);
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }
  function datetime(ms) {
    const d = new Date(ms);
    return d.getFullYear() + '-' + two(d.getMonth() + 1) + '-' + two(d.getDate()) + ' ' + time(ms);
  }

  function tick() {
    const c = document.getElementById('clock');
    if (c) {
      const now = Date.now();
      c.textContent = time(now);
      c.title = datetime(now);
      c.dateTime = new Date(now).toISOString();
    }
  }

  /* <tag class=cls>text</tag> */
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  document.addEventListener('DOMContentLoaded', () => {
    tick();
    setInterval(tick, 1000);
    connect();
  });

  return { on, post, pill, time, datetime, el };
})();
