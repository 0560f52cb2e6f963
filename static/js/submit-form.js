// Show only the fieldset for the chosen kind (endpoint or Hugging Face model). Without JavaScript both stay visible.
(function () {
  "use strict";
  var form = document.getElementById("submit-form");
  if (!form) { return; }
  function update() {
    var chosen = form.querySelector("input[name=kind]:checked");
    var kind = chosen ? chosen.value : "endpoint";
    form.querySelectorAll("fieldset[data-kind]").forEach(function (fs) {
      fs.hidden = fs.getAttribute("data-kind") !== kind;
    });
  }
  form.addEventListener("change", function (event) {
    if (event.target.name === "kind") { update(); }
  });
  update();
})();
