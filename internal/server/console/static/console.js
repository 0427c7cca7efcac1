// callrelay console: live updates over server-sent events. Written for this page, no library.
// The server renders every fragment (one rendering per change per replica); this only puts it
// in place. Without JavaScript every page still works: forms post, pages reload.
(function () {
  "use strict";
  var stream = document.body.getAttribute("data-stream");
  if (!stream || !window.EventSource) return;
  var state = document.getElementById("stream-state");
  var es = new EventSource(stream);
  function place(msg) {
    var tpl = document.createElement("template");
    tpl.innerHTML = msg.html;
    var node = tpl.content.firstElementChild;
    if (!node) return;
    var old = document.getElementById(msg.id);
    if (old) {
      // Keep a playing voicemail playing: replace everything but its player.
      var oldAudio = old.querySelector("audio"), newAudio = node.querySelector("audio");
      if (oldAudio && newAudio && !oldAudio.paused) newAudio.replaceWith(oldAudio);
      old.replaceWith(node);
      return;
    }
    if (msg.kind === "call" && msg.live) {
      var list = document.getElementById("live-calls");
      if (!list) return;
      var none = document.getElementById("no-live");
      if (none) none.remove();
      list.prepend(node);
      // As the page: the 100 most recent calls in progress.
      while (list.children.length > 100) list.lastElementChild.remove();
    }
  }
  // resync: more changed than the feed shows (a busy hour). The page's main part is read
  // afresh, at most every 2 s, instead of each change.
  var resyncing = false, again = false;
  function resync() {
    if (resyncing) { again = true; return; }
    resyncing = true;
    fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("main"), main = document.getElementById("main");
      if (fresh && main) main.replaceWith(fresh);
    }).catch(function () { /* the next resync or change tries again */ }).then(function () {
      setTimeout(function () {
        resyncing = false;
        if (again) { again = false; resync(); }
      }, 2000);
    });
  }
  es.addEventListener("change", function (ev) {
    try {
      var msg = JSON.parse(ev.data);
      if (msg.kind === "resync") resync(); else place(msg);
    } catch (e) { /* a bad message is skipped */ }
  });
  // A reconnection missed what changed meanwhile: the page reads itself afresh.
  var dropped = false;
  es.addEventListener("open", function () {
    if (state) state.textContent = "Live: calls update as they change.";
    if (dropped) { dropped = false; resync(); }
  });
  es.addEventListener("error", function () { dropped = true; if (state) state.textContent = "Reconnecting…"; });
})();
