"""Demo pieces: a local OpenAI-compatible model server and a demo catalog, for the quickstart and tests."""
