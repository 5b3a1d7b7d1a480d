"""prodcat: streaming multi-label product categoriser (shared domain: settings, records, cleaning, taxonomy, rules, CLI, local stack)."""
