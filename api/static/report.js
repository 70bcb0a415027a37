// The clinician report's own script (no inline script: the CSP allows only 'self').
// It adds the viewer's local time next to the UTC time (shown without JavaScript too)
// and shows a print button. It reads nothing but the page's own time element.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var issued = document.getElementById("issued");
  var local = document.getElementById("issued-local");
  if (issued && local) {
    var when = new Date(issued.getAttribute("datetime"));
    if (!isNaN(when.getTime())) {
      var zone = "";
      try {
        zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
      } catch (e) {
        zone = "";
      }
      local.textContent = "your local time " + when.toLocaleString() + (zone ? " (" + zone + ")" : "");
    }
  }
  var print = document.getElementById("print-report");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", function () { window.print(); });
  }
});
