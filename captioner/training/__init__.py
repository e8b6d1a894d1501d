"""Training from cached features with `model.fit`: the data pipelines (`data`), warm starts from a trained model
(`warm_start`), self-critical training (`self_critical`), tf.distribute (`distribute`), what happens after each epoch
(`callbacks`) and the run that puts them together (`run`)."""
from .callbacks import RunKeeper
from .data import FeatureStore, caption_dataset, image_dataset
from .run import build_model, train
from .self_critical import SelfCritical, SelfCriticalTrainer
from .warm_start import fine_tuning_config, matching_weights, transfer_weights, vocabulary_for

__all__ = ["FeatureStore", "RunKeeper", "SelfCritical", "SelfCriticalTrainer", "build_model", "caption_dataset",
           "fine_tuning_config", "image_dataset", "matching_weights", "train", "transfer_weights", "vocabulary_for"]
