"""Browser tests: the dashboard at /ui in headless Chromium against a live WorkStream stack."""
