"""Forward: sends an allowed request to its upstream and relays the answer, streamed or whole."""
