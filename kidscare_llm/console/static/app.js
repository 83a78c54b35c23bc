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
