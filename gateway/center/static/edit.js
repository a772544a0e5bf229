// Edit form: Content and Metadata must be JSON. A field that is not is named next to it and
// focused, and nothing is sent (the server checks again for a browser without script).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form.edit");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    let first = null;
    for (const area of form.querySelectorAll("textarea[data-json]")) {
      const error = document.getElementById(area.id + "-error");
      try {
        JSON.parse(area.value);
        area.removeAttribute("aria-invalid");
        error.textContent = "";
      } catch (problem) {
        area.setAttribute("aria-invalid", "true");
        error.textContent = area.dataset.json + " is not valid JSON (" + problem.message + ").";
        first = first || area;
      }
    }
    if (first) {
      event.preventDefault();
      first.focus();
    }
  });
});
