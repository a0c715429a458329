"""The web server: Flask app, JSON API under /api/v1, sessions and tokens. It never imports torch."""
