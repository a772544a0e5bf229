// Starts Swagger UI on /openapi.json (a file, not inline script: the page's CSP allows no inline code).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,  // the default would ask a server elsewhere to validate the document
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
