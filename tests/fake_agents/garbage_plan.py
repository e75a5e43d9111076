"""A fake PM agent whose plans are never valid: prose instead of the JSON plan."""

print("I think we should refactor everything first, then see.")
