// The task rows of a benchmark version in the admin: show the parameter inputs of the chosen task type.
(function () {
  "use strict";
  function sync(select) {
    var row = select.closest("tr, .inline-related");
    if (!row) { return; }
    var groups = row.querySelectorAll(".task-params-type");
    groups.forEach(function (group) { group.hidden = group.dataset.taskType !== select.value; });
    var none = row.querySelector(".task-params-none");
    if (none) { none.hidden = Boolean(select.value); }
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLSelectElement && /-task_type$/.test(target.name)) { sync(target); }
  });
}());
