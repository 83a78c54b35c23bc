// Live alerts: the server says when an alert arrives (server-sent events); the page then
// fetches the alert list the server rendered (escaped there) and shows the banner. No CDN.
(function () {
  if (!window.EventSource || !document.getElementById('banner')) return;
  var source = new EventSource('/events');
  source.addEventListener('alert', function (event) {
    var data = JSON.parse(event.data);
    var banner = document.getElementById('banner');
    document.getElementById('unacked').textContent = data.unacked;
    banner.hidden = !data.unacked;
    var list = document.getElementById('alerts');
    if (list) {
      fetch('/alerts/list', {credentials: 'same-origin'}).then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, 'text/html');
          var fresh = doc.body;
          list.replaceChildren.apply(list, Array.prototype.slice.call(fresh.childNodes));
        });
    }
  });
}());

// Knowledge: while the chat node ingests an upload, poll its job and move the progress bar;
// when it is done, reload the page so the document list shows the new chunks.
(function () {
  var box = document.getElementById('job');
  if (!box || box.getAttribute('data-state') !== 'running') return;
  var bar = document.getElementById('jobbar');
  var label = document.getElementById('jobtext');
  function poll() {
    fetch('/knowledge/jobs/' + box.getAttribute('data-job'), {credentials: 'same-origin'})
      .then(function (r) { return r.json(); })
      .then(function (job) {
        bar.max = job.total || 1;
        bar.value = job.done;
        label.textContent = job.done + ' / ' + job.total + (job.current ? ' · ' + job.current : '');
        if (job.state === 'running') { setTimeout(poll, 500); return; }
        window.location.replace('/knowledge?job=' + encodeURIComponent(job.id));
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
}());

// Knowledge: while chunks wait for their dense vectors (the chat node embeds them in the
// background), poll how far it got and move that bar.
(function () {
  var box = document.getElementById('embedding');
  if (!box || !window.fetch) return;
  var bar = document.getElementById('embedbar');
  var label = document.getElementById('embedtext');
  function poll() {
    fetch('/knowledge/status', {credentials: 'same-origin'})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.error) { setTimeout(poll, 5000); return; }
        bar.max = s.total || 1;
        bar.value = s.done;
        label.textContent = s.done + ' / ' + s.total;
        if (s.done < s.total) setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  if (Number(box.getAttribute('data-done')) < Number(box.getAttribute('data-total'))) poll();
}());

// Persona: show the system prompt's size in tokens as the texts change (nothing is saved).
(function () {
  var form = document.getElementById('personaform');
  if (!form || !window.fetch) return;
  var count = document.getElementById('tokencount');
  var line = document.getElementById('tokens');
  var timer = null;
  function preview() {
    var body = new FormData(form);
    fetch('/persona/preview', {method: 'POST', body: body, credentials: 'same-origin'})
      .then(function (r) { return r.json(); })
      .then(function (size) {
        if (size.error) { line.className = 'error'; count.textContent = size.error; return; }
        count.textContent = size.tokens;
        line.className = size.fits ? 'note' : 'error';
      });
  }
  form.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(preview, 600);
  });
}());
