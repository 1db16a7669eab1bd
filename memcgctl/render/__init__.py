"""Output for a person (text) and the live view; the only place rich is imported."""
