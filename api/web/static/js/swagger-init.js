// Starts Swagger UI on /docs (api/web/docs.py); a file, not an inline script, for the CSP.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
