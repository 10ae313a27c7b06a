"""Module 2: the CNN revolution."""
