"""The status page: `GET /` and `GET /api/status` on the webhook or metrics listener (docs/status-page.md).

Nothing here is imported until the first request, so an agent nobody looks at pays nothing for Jinja2.
"""
