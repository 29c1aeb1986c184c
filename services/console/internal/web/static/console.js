// Live countdowns: each <time class="countdown" datetime=...> counts down
// from the server's clock (body data-now), not the browser's.
(function () {
  "use strict";
  var serverNow = Number(document.body.getAttribute("data-now"));
  var loaded = Date.now();
  var words = {
    zh: { left: "剩余", overdue: "已超时" },
    en: { left: "left", overdue: "overdue by" }
  };
  function span(ms) {
    var s = Math.round(ms / 1000), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (h >= 24) return Math.floor(h / 24) + "d " + pad(h % 24) + "h " + pad(m) + "m";
    if (h > 0) return h + "h " + pad(m) + "m " + pad(sec) + "s";
    return m + "m " + pad(sec) + "s";
  }
  function tick() {
    var now = serverNow + (Date.now() - loaded);
    var els = document.querySelectorAll("time.countdown");
    for (var i = 0; i < els.length; i++) {
      var el = els[i], w = words[el.getAttribute("data-lang")] || words.en;
      var d = Date.parse(el.getAttribute("datetime")) - now;
      if (d < 0) el.textContent = w.overdue + " " + span(-d);
      else el.textContent = el.getAttribute("data-lang") === "zh" ? w.left + " " + span(d) : span(d) + " " + w.left;
    }
  }
  if (serverNow) setInterval(tick, 1000);
})();
