"""What the worker (streams/) and retraining (retrain/) share, so neither imports the other.

Sinks behind one protocol (Elasticsearch, Kafka), the error policy and dead letters, model
announcements on models.updates, and loading the categoriser an announcement points at.
"""
