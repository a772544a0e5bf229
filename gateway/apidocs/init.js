// Starts Swagger UI on /openapi.json (a file, not inline script: the page's CSP allows no inline code).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: false,  // its anchors inside the operation buttons would nest one control in another
    validatorUrl: null,  // the default would ask a server elsewhere to validate the document
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    syntaxHighlight: false,  // its colours on a dark ground are too faint to read (axe: contrast)
  });
  // Swagger UI leaves its server and example choosers and its body editor without a name: give
  // each one as it appears.
  new MutationObserver(() => {
    for (const select of document.querySelectorAll("select:not([aria-label])")) {
      select.setAttribute("aria-label", select.id === "servers" ? "Server" : "Example");
    }
    for (const area of document.querySelectorAll("textarea:not([aria-label]):not([id])")) {
      area.setAttribute("aria-label", "Request body");
    }
  }).observe(document.body, {childList: true, subtree: true});
});
