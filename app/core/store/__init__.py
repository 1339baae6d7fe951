"""The project file: schema and frozen migrations, the audit chain, the prediction log and its imports."""
