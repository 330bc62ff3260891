"""Two plugins with hook errors: a misspelt hook, and an implementation with a wrong argument."""
