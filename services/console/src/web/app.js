// salesync console: progressive enhancement only. Every page works without
// this script; with it, forms marked data-swap="ID" are sent in the
// background and the element ID is replaced by the same element of the
// answer (the server always renders whole pages), elements with
// data-refresh="MS" re-read themselves until the server drops the attribute,
// and <time datetime> shows in the viewer's time zone.
"use strict";

function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) {
      t.textContent = d.toLocaleString(undefined, {
        year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
        timeZoneName: "short",
      });
      t.title = t.getAttribute("datetime");
    }
  });
}

function swapIn(id, html) {
  var doc = new DOMParser().parseFromString(html, "text/html");
  var fresh = doc.getElementById(id);
  var old = document.getElementById(id);
  if (!fresh || !old) return false;
  old.replaceWith(fresh);
  localTimes(fresh);
  armRefresh(fresh);
  var focus = fresh.querySelector("[autofocus], .notice, .errors");
  if (focus) { focus.setAttribute("tabindex", "-1"); focus.focus(); }
  return true;
}

function armRefresh(root) {
  var els = root.hasAttribute && root.hasAttribute("data-refresh") ? [root] : [];
  root.querySelectorAll("[data-refresh]").forEach(function (e) { els.push(e); });
  els.forEach(function (el) {
    var ms = parseInt(el.getAttribute("data-refresh"), 10) || 2000;
    setTimeout(function () {
      if (!document.body.contains(el)) return;
      fetch(location.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) { return r.text(); })
        .then(function (html) { swapIn(el.id, html); })
        .catch(function () { armRefresh(el); });
    }, ms);
  });
}

document.addEventListener("submit", function (e) {
  var form = e.target;
  var target = form.getAttribute("data-swap");
  if (!target || (form.method || "get").toLowerCase() !== "post") return;
  e.preventDefault();
  var body = new URLSearchParams(new FormData(form, e.submitter));
  form.setAttribute("aria-busy", "true");
  fetch(form.action, {
    method: "POST", body: body, credentials: "same-origin",
    headers: { "X-Requested-With": "fetch" },
  })
    .then(function (r) {
      return r.text().then(function (html) {
        if (!swapIn(target, html)) { document.open(); document.write(html); document.close(); }
        if (r.redirected) history.replaceState(null, "", r.url);
      });
    })
    .catch(function () { form.submit(); })
    .finally(function () { form.removeAttribute("aria-busy"); });
});

// "Select all" boxes: <input type=checkbox data-select-all="name">.
document.addEventListener("change", function (e) {
  var name = e.target.getAttribute && e.target.getAttribute("data-select-all");
  if (!name) return;
  document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (c) {
    c.checked = e.target.checked;
  });
});

localTimes(document);
armRefresh(document.body);
