// Portolan's web view: the only script, served from /static (the CSP allows no inline
// script). The pages work without it; it only shows times in the browser's own zone.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d.getTime())) return;
    el.title = el.textContent;
    el.textContent = d.toLocaleString();
  });
});
