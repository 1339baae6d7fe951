"""Qt-free core of Lineproof: every capability as a library (CLI, GUI and scripts call it)."""
