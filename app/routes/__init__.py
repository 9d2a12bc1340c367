"""One router per concern: pages (HTML and htmx fragments), api (JSON and NDJSON), ws (the stream)."""
