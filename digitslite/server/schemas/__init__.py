"""The JSON API declared once: request schemas, their field types, answers, and the OpenAPI document."""
