// Small behaviours every page may use, without inline handlers (the Content-Security-Policy forbids them):
// a <select data-autosubmit> sends its form when changed.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.matches && target.matches("select[data-autosubmit]") && target.form) {
      target.form.submit();
    }
  });
})();
