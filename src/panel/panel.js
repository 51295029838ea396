// rollcall participant panel: watches one room over /v1/ws and renders it live.
//
// URL: /panel/<room>#token=<jwt>[&admin=<admin token>]. The fragment never reaches the server.
// Protocol (protocol/README.md): `watch` → `panel` snapshot, then versioned events, each +1.
// A version gap, or an event of another epoch → `sync` (a fresh `panel`). A dropped socket → reconnect with backoff.
// Kick buttons: with `admin`, through POST /v1/rooms/{room}/kick; for the room's host (the
// token's member: `sub`, a game token's `plyrId`, a video room token's `ud`), through the
// socket's `kick` message.
(function () {
  'use strict';

  var byId = function (id) { return document.getElementById(id); };
  var els = {
    room: byId('room'), subtitle: byId('subtitle'), status: byId('status'),
    statusText: byId('status-text'), count: byId('count'), countLabel: byId('count-label'),
    kinds: byId('kinds'), version: byId('version'), members: byId('members'),
    empty: byId('empty'), notice: byId('notice'), viewer: byId('viewer')
  };

  var room = roomFromPath(location.pathname);
  var params = new URLSearchParams(location.hash.replace(/^#/, ''));
  var token = params.get('token') || '';
  var admin = params.get('admin') || '';
  var me = subjectOf(token);

  var view = { members: new Map(), host: null, version: null, epoch: null, attrs: null };
  var ws = null;
  var attempt = 0;
  var retryTimer = null;
  var finished = false;   // the room closed or the token cannot work: no more reconnects
  var syncing = false;    // a `sync` is in flight after a gap
  var lastSeen = 0;
  var refs = 0;
  var kicks = new Map();  // ref → member id of a kick sent over the socket
  var adminKicks = new Set(); // member ids with a REST kick in flight
  var diag = { resyncs: 0, reconnects: 0, gaps: 0 };

  // ----- helpers --------------------------------------------------------------------------

  function roomFromPath(path) {
    var parts = path.split('/').filter(Boolean);
    var seg = parts.length ? parts[parts.length - 1] : '';
    try { return decodeURIComponent(seg); } catch (e) { return seg; }
  }

  // The token's member id (display only: the server decides what the token may do).
  function subjectOf(jwt) {
    try {
      var part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      while (part.length % 4) part += '=';
      var bytes = Uint8Array.from(atob(part), function (c) { return c.charCodeAt(0); });
      var claims = JSON.parse(new TextDecoder().decode(bytes));
      if (claims.td !== undefined || claims.rd !== undefined) {
        // A video room token (protocol/video.md): the member is `ud` (a string or a number);
        // without one the server makes a fresh id per connection, which the page cannot know.
        if (typeof claims.ud === 'string' && claims.ud) return claims.ud;
        if (typeof claims.ud === 'number') return String(claims.ud);
        return null;
      }
      if (typeof claims.plyrId === 'string' && claims.plyrId) return claims.plyrId.toLowerCase();
      if (typeof claims.sub === 'string' && claims.sub) return claims.sub;
    } catch (e) { /* not a JWT we can read: no "you", no host kick */ }
    return null;
  }

  function wsUrl() {
    var u = new URL('../v1/ws', location.href);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    u.hash = '';
    u.search = '?token=' + encodeURIComponent(token);
    return u.toString();
  }

  function kickUrl() {
    return new URL('../v1/rooms/' + encodeURIComponent(room) + '/kick', location.href).toString();
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function initials(name) {
    var words = String(name).replace(/[^\p{L}\p{N}\s]/gu, ' ').trim().split(/\s+/).filter(Boolean);
    if (!words.length) return '?';
    var s = words.length === 1 ? words[0].slice(0, 2) : words[0][0] + words[words.length - 1][0];
    return s.toUpperCase();
  }

  function stateText(state) {
    if (state === null || state === undefined) return '';
    if (typeof state === 'object' && !Array.isArray(state)) {
      return Object.keys(state).map(function (k) {
        var v = state[k];
        return k + ': ' + (typeof v === 'string' ? v : JSON.stringify(v));
      }).join(' · ');
    }
    return typeof state === 'string' ? state : JSON.stringify(state);
  }

  function since(ms) {
    var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 45) return 'joined just now';
    var m = Math.round(s / 60);
    if (m < 60) return 'joined ' + m + ' min ago';
    var h = Math.round(m / 60);
    if (h < 24) return 'joined ' + h + ' h ago';
    return 'joined ' + new Date(ms).toLocaleDateString();
  }

  // A telephone handset, drawn inline (no icon font, no image request).
  function handset() {
    var ns = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '18');
    svg.setAttribute('height', '18');
    var path = document.createElementNS(ns, 'path');
    path.setAttribute('d', 'M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2z');
    path.setAttribute('fill', 'none');
    path.setAttribute('stroke', 'currentColor');
    path.setAttribute('stroke-width', '2');
    path.setAttribute('stroke-linejoin', 'round');
    svg.appendChild(path);
    return svg;
  }

  function plural(n, one, many) { return n + ' ' + (n === 1 ? one : many); }

  function setStatus(state, text) {
    els.status.dataset.state = state;
    els.statusText.textContent = text;
    document.body.dataset.state = state;
  }

  var noticeTimer = null;
  function notice(text) {
    els.notice.textContent = text;
    els.notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { els.notice.hidden = true; }, 6000);
  }

  // ----- connection -----------------------------------------------------------------------

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(msg)); return true; }
    return false;
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (finished) return;
    if (!token) {
      finished = true;
      setStatus('error', 'No token');
      notice('Open this page as /panel/<room>#token=<jwt> (optionally &admin=<operator token>).');
      return;
    }
    setStatus(attempt ? 'reconnecting' : 'connecting', attempt ? 'Reconnecting…' : 'Connecting…');
    var sock;
    try { sock = new WebSocket(wsUrl()); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    sock.onopen = function () {
      if (ws !== sock) return;
      lastSeen = Date.now();
      send({ type: 'watch', room: room, ref: 'watch' });
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      lastSeen = Date.now();
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      handle(msg);
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      syncing = false;
      if (finished) return;
      if (ev.code === 4001) {
        finished = true;
        setStatus('error', 'Token expired');
        notice('The token expired: reload the page with a fresh one.');
        return;
      }
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (finished || retryTimer) return;
    attempt += 1;
    diag.reconnects += 1;
    var base = Math.min(15000, 500 * Math.pow(2, Math.min(attempt - 1, 5)));
    var wait = Math.round(base * (0.75 + Math.random() * 0.5));
    setStatus('reconnecting', 'Offline · retry in ' + Math.max(1, Math.round(wait / 1000)) + ' s');
    retryTimer = setTimeout(connect, wait);
  }

  // "Retry now": a click on the status while offline, or on a closed room (it may be reopened).
  function reconnectNow() {
    if (ws) return;
    if (finished) {
      if (els.status.dataset.state !== 'closed') return;
      finished = false;
    }
    attempt = Math.max(attempt, 1);
    connect();
  }

  // A silent network can leave a socket "open" forever: ping, and drop it if nothing comes back.
  setInterval(function () {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - lastSeen > 45000) { ws.close(); return; }
    send({ type: 'ping' });
  }, 20000);

  window.addEventListener('online', function () { if (!finished) reconnectNow(); });
  els.status.addEventListener('click', reconnectNow);

  // ----- protocol -------------------------------------------------------------------------

  function resync() {
    diag.gaps += 1;
    if (syncing) return;
    syncing = true;
    setStatus('resyncing', 'Resyncing…');
    if (!send({ type: 'sync', room: room, ref: 'sync' })) syncing = false;
  }

  function handle(msg) {
    switch (msg.type) {
      case 'panel':
        if (msg.room !== room) return;
        if (syncing || view.version !== null) diag.resyncs += 1;
        view.members = new Map(msg.members.map(function (m) { return [m.id, m]; }));
        view.host = msg.host || null;
        view.version = msg.version;
        view.epoch = msg.epoch || null;
        syncing = false;
        attempt = 0;
        setStatus('live', 'Live');
        render();
        return;
      case 'joined': case 'left': case 'state': case 'host': case 'updated':
        if (msg.room !== room || view.version === null) return;
        // A version means something only within its epoch (a restarted server, a re-created
        // room): another epoch is another history, whatever the number says. Resync.
        if ((msg.epoch || null) !== view.epoch) { resync(); return; }
        if (msg.version <= view.version) return; // already in the snapshot we have
        if (msg.version !== view.version + 1) { resync(); return; }
        apply(msg);
        view.version = msg.version;
        render();
        return;
      case 'closed':
        if (msg.room !== room) return;
        finished = true;
        setStatus('closed', 'Room closed');
        notice('The room closed (' + msg.reason + ').');
        if (ws) ws.close(1000);
        return;
      case 'error':
        onError(msg);
        return;
      case 'ack':
        if (kicks.has(msg.ref)) kicks.delete(msg.ref);
        return;
      default:
        return; // pong, kicked (never sent to a watcher) ...
    }
  }

  function apply(msg) {
    var i;
    switch (msg.type) {
      case 'joined':
        for (i = 0; i < msg.members.length; i++) view.members.set(msg.members[i].id, msg.members[i]);
        if (msg.host) view.host = msg.host;
        break;
      case 'left':
        for (i = 0; i < msg.members.length; i++) view.members.delete(msg.members[i]);
        if (msg.host) view.host = msg.host;
        else if (view.host !== null && !view.members.has(view.host)) view.host = null;
        break;
      case 'state':
        if (view.members.has(msg.member)) view.members.get(msg.member).state = msg.state;
        break;
      case 'host':
        view.host = msg.host;
        break;
      case 'updated':
        view.attrs = msg.attrs;
        break;
    }
  }

  function onError(msg) {
    if (msg.ref === 'watch') {
      if (msg.code === 'invalid_room' || msg.code === 'forbidden') {
        finished = true;
        setStatus('error', 'Cannot watch');
        notice(msg.message);
        if (ws) ws.close(1000);
        return;
      }
      notice(msg.code === 'room_not_found' ? 'This room does not exist (yet). Retrying…' : msg.message);
      if (ws) ws.close(1000); // onclose schedules the retry
      return;
    }
    if (msg.ref === 'sync') { syncing = false; return; }
    if (kicks.has(msg.ref)) {
      kicks.delete(msg.ref);
      notice('Kick refused: ' + msg.message);
      render();
    }
  }

  // ----- kicking --------------------------------------------------------------------------

  function canKick(id) {
    if (id === me) return false;
    return admin !== '' || (me !== null && me === view.host);
  }

  // First click arms the button ("Confirm"), a second one within 4 s kicks.
  var armed = null;
  var armTimer = null;

  function kick(id) {
    if (armed !== id) {
      armed = id;
      clearTimeout(armTimer);
      armTimer = setTimeout(function () { armed = null; render(); }, 4000);
      render();
      return;
    }
    armed = null;
    clearTimeout(armTimer);
    if (admin) {
      adminKicks.add(id);
      render();
      fetch(kickUrl(), {
        method: 'POST',
        headers: { 'Authorization': 'Bearer ' + admin, 'Content-Type': 'application/json' },
        body: JSON.stringify({ member: id }),
        cache: 'no-store',
        referrerPolicy: 'no-referrer'
      }).then(function (r) {
        adminKicks.delete(id);
        if (r.ok) return; // the `left` event removes the row
        return r.json().catch(function () { return {}; }).then(function (b) {
          notice('Kick refused: ' + (b.message || ('HTTP ' + r.status)));
          render();
        });
      }, function () {
        adminKicks.delete(id);
        notice('Kick failed: rollcall is unreachable.');
        render();
      });
      return;
    }
    refs += 1;
    var ref = 'kick-' + refs;
    kicks.set(ref, id);
    if (!send({ type: 'kick', room: room, member: id, ref: ref })) {
      kicks.delete(ref);
      notice('Kick failed: not connected.');
    }
    render();
  }

  // ----- rendering ------------------------------------------------------------------------

  function row(m) {
    var li = el('li', 'member kind-' + m.kind);
    li.dataset.id = m.id;
    li.dataset.kind = m.kind;
    var isHost = m.id === view.host;
    if (isHost) li.classList.add('is-host');
    var label = m.name || m.id;

    var avatar = el('div', 'avatar', m.kind === 'phone' ? null : initials(label));
    avatar.setAttribute('aria-hidden', 'true');
    if (m.kind === 'phone') avatar.appendChild(handset());
    li.appendChild(avatar);

    var who = el('div', 'who');
    var line = el('div', 'name-line');
    line.appendChild(el('span', 'name', label)).title = label;
    if (isHost) line.appendChild(el('span', 'badge host', 'Host'));
    if (m.id === me) line.appendChild(el('span', 'badge you', 'You'));
    who.appendChild(line);
    var sub = el('div', 'sub');
    sub.appendChild(el('span', 'chip kind kind-' + m.kind, m.kind));
    if (m.name) sub.appendChild(el('span', 'id mono', m.id)).title = m.id;
    var t = el('span', 'since', since(m.joinedAt));
    t.title = new Date(m.joinedAt).toLocaleString();
    sub.appendChild(t);
    who.appendChild(sub);
    li.appendChild(who);

    var st = el('div', 'state', stateText(m.state));
    if (m.state !== null && m.state !== undefined) st.title = JSON.stringify(m.state);
    li.appendChild(st);

    if (canKick(m.id)) {
      var b = el('button', 'kick', 'Kick');
      b.type = 'button';
      b.dataset.id = m.id;
      b.setAttribute('aria-label', 'Kick ' + label);
      if (inFlight.has(m.id)) {
        b.disabled = true;
        b.textContent = 'Kicking…';
      } else if (armed === m.id) {
        b.classList.add('armed');
        b.textContent = 'Confirm';
      }
      b.addEventListener('click', function () { kick(m.id); });
      li.appendChild(b);
    }
    return li;
  }

  var inFlight = new Set();

  function render() {
    var list = els.members;
    inFlight = new Set(kicks.values());
    adminKicks.forEach(function (id) { inFlight.add(id); });
    var rows = [];
    view.members.forEach(function (m) { rows.push(row(m)); });
    list.replaceChildren.apply(list, rows);

    var n = view.members.size;
    els.count.textContent = String(n);
    els.countLabel.textContent = n === 1 ? 'member' : 'members';
    var kinds = { player: 0, phone: 0, web: 0 };
    view.members.forEach(function (m) { kinds[m.kind] = (kinds[m.kind] || 0) + 1; });
    var parts = [];
    if (kinds.player) parts.push(plural(kinds.player, 'player', 'players'));
    if (kinds.web) parts.push(plural(kinds.web, 'web', 'web'));
    if (kinds.phone) parts.push(plural(kinds.phone, 'phone', 'phones'));
    var segs = [];
    parts.forEach(function (p, i) {
      if (i) segs.push(document.createTextNode(' · '));
      segs.push(el('span', 'seg', p));
    });
    if (!segs.length) segs.push(document.createTextNode('–'));
    els.kinds.replaceChildren.apply(els.kinds, segs);
    els.version.textContent = view.version === null ? '–' : String(view.version);
    els.empty.hidden = n !== 0 || view.version === null;
    var title = view.attrs && typeof view.attrs.name === 'string' ? view.attrs.name : '';
    els.subtitle.textContent = title;
    els.subtitle.hidden = !title;
    document.title = n + ' · ' + room + ' · rollcall';
  }

  function renderViewer() {
    var who = me ? 'Viewing as ' + me : 'Viewing';
    if (admin) who += ' · operator';
    els.viewer.textContent = who;
  }

  // A small handle for diagnostics (and the browser test): read-only state plus `handle`.
  window.rollcallPanel = {
    room: room,
    diag: diag,
    handle: handle,
    get version() { return view.version; },
    get epoch() { return view.epoch; },
    get host() { return view.host; },
    get state() { return els.status.dataset.state; }
  };

  els.room.textContent = room || '(no room)';
  renderViewer();
  render();
  setInterval(render, 30000); // keeps "joined N min ago" fresh
  connect();
})();
