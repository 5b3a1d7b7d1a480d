"""prodcat: streaming multi-label product categoriser.

The core domain (settings, limits, records, cleaning, taxonomy, rules) at the bottom floor; the CLI,
the demo and the local stack at the top (see the README's floors and .importlinter).
"""
