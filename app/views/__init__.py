"""PySide6 screens over app.core: thin widgets, Qt models over core results, background workers."""
