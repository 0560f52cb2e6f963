// Keeps a submission's status page current by polling its small JSON view; no page reload, no framework.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var url = live.getAttribute("data-progress-url");
  var every = Math.max(200, parseInt(live.getAttribute("data-poll-ms"), 10) || 3000);
  var table = document.querySelector("table.cells");
  var withMethod = table && table.querySelectorAll("thead th").length > 5;

  function $(id) { return document.getElementById(id); }
  function setText(id, text) { var el = $(id); if (el) { el.textContent = text; } }
  function show(id, visible) { var el = $(id); if (el) { el.hidden = !visible; } }

  function cellRow(cell) {
    var row = document.createElement("tr");
    row.setAttribute("data-cell-id", String(cell.id));
    var head = document.createElement("th");
    head.scope = "row";
    head.textContent = cell.task;
    row.appendChild(head);
    var values = [[String(cell.length), "num"]];
    if (withMethod) { values.push([cell.method, ""], [String(cell.budget), "num"]); }
    values.forEach(function (v) {
      var td = document.createElement("td");
      td.textContent = v[0];
      if (v[1]) { td.className = v[1]; }
      row.appendChild(td);
    });
    var status = document.createElement("td");
    status.className = "cell-status";
    row.appendChild(status);
    var prog = document.createElement("td");
    prog.appendChild(document.createElement("progress"));
    prog.appendChild(document.createTextNode(" "));
    var count = document.createElement("span");
    count.className = "cell-count";
    prog.appendChild(count);
    row.appendChild(prog);
    var errored = document.createElement("td");
    errored.className = "num cell-errored";
    row.appendChild(errored);
    return row;
  }

  function updateCells(cells) {
    var body = $("cells");
    if (!body) { return; }
    if (cells.length) {
      var placeholder = body.querySelector("tr.empty-row");
      if (placeholder) { placeholder.remove(); }
    }
    cells.forEach(function (cell) {
      var row = body.querySelector('tr[data-cell-id="' + cell.id + '"]');
      if (!row) { row = cellRow(cell); body.appendChild(row); }
      row.querySelector(".cell-status").textContent = cell.status_label;
      var bar = row.querySelector("progress");
      bar.max = cell.total || 1;
      bar.value = cell.done;
      row.querySelector(".cell-count").textContent = cell.done + "/" + cell.total;
      row.querySelector(".cell-errored").textContent = String(cell.errored);
    });
  }

  function render(data) {
    live.className = "status-box status-" + data.status;
    setText("status-label", data.status_label);
    setText("status-explanation", data.explanation);
    show("queue", data.queue_position !== null);
    if (data.queue_position !== null) { setText("queue-position", String(data.queue_position + 1)); }
    show("eta", Boolean(data.eta && data.eta.text));
    setText("eta-text", data.eta ? data.eta.text : "");
    setText("eta-label", data.eta && data.eta.held ? "Now:" : "Expected to finish in:");
    var overall = $("overall");
    if (overall) {
      overall.max = data.samples_total || 1;
      overall.value = data.samples_done;
      overall.textContent = data.percent + "%";
    }
    setText("overall-text", data.samples_done + " of " + (data.samples_total || "?") + " samples (" + data.percent +
      "%), " + data.samples_errored + " errored" +
      (data.no_final_answer ? ", " + data.no_final_answer + " without a final answer" : "") + "; " + data.cells_done + " of " + data.cells_total + " cells finished");
    updateCells(data.cells || []);
    if (data.results_url) {
      var link = $("results-link");
      if (link) { link.href = data.results_url; }
      show("results", true);
    }
    if (typeof data.failure_reason === "string" && data.failure_reason) {
      setText("failure-reason", data.failure_reason);
      show("failure", true);
    }
    if (data.probe && $("probe")) {
      setText("probe", (data.probe.ok ? "passed" : "failed (" + data.probe.code + ")") + ": " + data.probe.message);
    }
  }

  var delay = every;
  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        delay = every;
        render(data);
        live.setAttribute("data-ended", data.ended ? "true" : "false");
        if (!data.ended) { window.setTimeout(poll, delay); }
      })
      .catch(function () {
        delay = Math.min(delay * 2, 60000);  // the server is busy or gone: back off, keep trying
        window.setTimeout(poll, delay);
      });
  }
  if (live.getAttribute("data-ended") !== "true") { window.setTimeout(poll, every); }
})();
