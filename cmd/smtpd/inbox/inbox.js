// Live updates of the list page (smtpd -http). The server sends each new
// message as a Server-Sent Event (GET /api/v1/events); its row is built
// with textContent only, never as HTML, since every field comes from
// whoever sent the mail.
(function () {
  'use strict';
  var table = document.getElementById('messages');
  if (!table || !window.EventSource) return;
  var body = table.tBodies[0];
  var live = table.dataset.live === '1'; // first page, no search: add rows
  var lost = false;
  var events = new EventSource('/api/v1/events');

  events.addEventListener('new', function (e) {
    var m = JSON.parse(e.data).Message;
    count('total', 1);
    count('unread', 1);
    if (!live) {
      document.getElementById('fresh').hidden = false;
      return;
    }
    var empty = body.querySelector('tr.empty');
    if (empty) empty.remove();
    body.insertBefore(row(m), body.firstChild);
  });
  events.addEventListener('delete', function (e) {
    var ids = JSON.parse(e.data).IDs || [];
    ids.forEach(function (id) {
      var tr = body.querySelector('tr[data-id="' + CSS.escape(id) + '"]');
      if (!tr) return;
      if (tr.classList.contains('unread')) count('unread', -1);
      tr.remove();
    });
    count('total', -ids.length);
  });
  // Events sent while the server was away are lost: once it is back,
  // the page is read anew.
  events.addEventListener('error', function () { lost = true; });
  events.addEventListener('open', function () { if (lost) location.reload(); });

  function count(id, n) {
    var el = document.getElementById(id);
    el.textContent = Math.max(0, Number(el.textContent) + n);
  }

  // row builds what the "row" template of list.html writes.
  function row(m) {
    var tr = document.createElement('tr');
    tr.dataset.id = m.ID;
    tr.className = 'unread live';
    var from = cell(tr, m.From.Name || m.From.Address);
    if (!from.textContent) span(from, 'note', '(no From)');
    cell(tr, (m.To || []).map(address).join(', '));
    var subject = cell(tr, '');
    var a = document.createElement('a');
    a.href = '/message/' + encodeURIComponent(m.ID);
    a.textContent = m.Subject || '(no subject)';
    subject.appendChild(a);
    if (m.Problem) {
      subject.appendChild(document.createTextNode(' '));
      span(subject, 'warn', 'malformed').title = m.Problem;
    }
    cell(tr, m.Date.slice(0, 16).replace('T', ' '));
    cell(tr, size(m.Size)).className = 'num';
    var files = cell(tr, '');
    if (m.Attachments) span(files, 'files', String(m.Attachments)).title = 'attachments';
    return tr;
  }

  function cell(tr, text) {
    var td = document.createElement('td');
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function span(parent, cls, text) {
    var s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    parent.appendChild(s);
    return s;
  }

  function address(a) {
    return a.Name ? a.Name + ' <' + a.Address + '>' : a.Address;
  }

  // size writes a size as sizeText in inbox_pages.go does.
  function size(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' kB';
    return (n / (1024 * 1024)).toFixed(1) + ' MB';
  }
})();
