"""Management commands (`manage.py <name>`) and their shared output helpers."""
