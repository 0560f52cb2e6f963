// Show only the fieldset for the chosen kind (endpoint or Hugging Face model). Without JavaScript both stay visible.
// Then state what the chosen version, kind and KV points will send, from the figures the server computed
// (the #cost-data JSON: per version, one KV point's requests and tokens, and the KV points it offers).
(function () {
  "use strict";
  var form = document.getElementById("submit-form");
  if (!form) { return; }
  var dataNode = document.getElementById("cost-data");
  var costs = dataNode ? JSON.parse(dataNode.textContent) : {};
  var chosenCost = document.getElementById("cost-chosen");

  function number(n) { return n.toLocaleString("en-US"); }

  function chosenValues(name) {
    return Array.prototype.map.call(form.querySelectorAll("input[name=" + name + "]:checked"),
      function (input) { return input.value; });
  }

  function kvPoints(offered) {
    var points = 1;  // the full cache
    var budgets = chosenValues("kv_budgets").map(Number).filter(function (b) { return b < 1; });
    chosenValues("kv_methods").forEach(function (method) {
      if (method === "full") { return; }
      var own = offered[method] || [];
      budgets.forEach(function (b) {
        if (own.some(function (o) { return Math.abs(o - b) < 1e-9; })) { points += 1; }
      });
    });
    return points;
  }

  function updateCost(kind) {
    if (!chosenCost) { return; }
    var select = form.querySelector("select[name=version]");
    var slug = select ? select.value : "";
    var cost = costs[slug];
    if (!cost) { chosenCost.hidden = true; return; }
    var points = kind === "huggingface" ? kvPoints(cost.offered || {}) : 1;
    var pointsText = points > 1 ? " (" + points + " KV points, the full cache included)" : "";
    chosenCost.textContent = "Your choice on " + slug + pointsText + ", computed: " +
      number(cost.requests * points) + " requests, " + number(cost.prompt_tokens * points) +
      " prompt tokens (upper bound), at most " + number(cost.new_tokens_max * points) +
      " new tokens. Expected duration: unknown until the " +
      (kind === "huggingface" ? "model is loaded and its first samples are timed." : "endpoint is probed.");
    chosenCost.hidden = false;
  }

  function update() {
    var chosen = form.querySelector("input[name=kind]:checked");
    var kind = chosen ? chosen.value : "endpoint";
    form.querySelectorAll("fieldset[data-kind]").forEach(function (fs) {
      fs.hidden = fs.getAttribute("data-kind") !== kind;
    });
    updateCost(kind);
  }
  form.addEventListener("change", update);
  update();
})();
