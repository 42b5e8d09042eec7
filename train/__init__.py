"""`python -m train FAMILY`: train any registered family end to end."""
