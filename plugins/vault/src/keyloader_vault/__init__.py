"""keyloader-vault."""
