"""Demo pieces: a local OpenAI-compatible model server and the demo catalog (quickstart, tests)."""
