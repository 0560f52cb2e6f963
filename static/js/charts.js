// Draw every chart of the page: each div.plotly-chart names the JSON data block that holds its figure
// (leaderboard/charts.py). No inline script anywhere, so the page runs under a strict Content-Security-Policy.
(function () {
  "use strict";
  function draw() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("div.plotly-chart[data-figure]").forEach(function (div) {
      var source = document.getElementById(div.getAttribute("data-figure"));
      if (!source) { return; }
      var figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(div, figure.data || [], figure.layout || {}, figure.config || {});
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
