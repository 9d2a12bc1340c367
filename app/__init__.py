"""The web playground: a FastAPI app that runs one simulated cluster per browser session."""
