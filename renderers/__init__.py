"""Stage 4: render a delivery into a complete email: jinja2 templates (autoescaped HTML, plain
text, subject) and the MIME message with safely encoded headers."""
