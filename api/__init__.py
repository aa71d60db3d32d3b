"""WorkStream's REST API: a Falcon app served by waitress (see api.app.create_app)."""
