from .training import FeatureStore, RunKeeper, build_model, train, vocabulary_for  # noqa: F401  until importers move
