// Starts Swagger UI on /docs. The schema's address comes from the page, so the page needs
// no inline script and keeps a strict Content-Security-Policy.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    // Deep links put a link inside each operation's toggle button (nested controls).
    deepLinking: false,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge from the public validator service: nothing loads from another host.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
