"""tf.distribute for training: the strategies `--strategy` names, and which process writes the run's files."""
import tensorflow as tf

from ..config import STRATEGIES


class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy with a `reduce` that takes what Keras's `fit` gives it, as MirroredStrategy's
    does: a whole input batch (a dict here, to build the model) and scalar metrics "along axis 0"
    (keras-team/keras#20329, tensorflow/tensorflow#72388)."""

    def reduce(self, reduce_op, value, axis):
        def reduce(part):
            scalar = self.experimental_local_results(part)[0].shape.rank == 0
            return super(MultiWorkerStrategy, self).reduce(reduce_op, part, None if scalar else axis)

        return tf.nest.map_structure(reduce, value)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`mirrored`: the devices of this machine; `multi-worker`: several machines, described by TF_CONFIG."""
    strategies = dict(zip(STRATEGIES, (tf.distribute.get_strategy, tf.distribute.MirroredStrategy,
                                       MultiWorkerStrategy), strict=True))
    if name not in strategies:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(strategies)}")
    return strategies[name]()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, except on the other workers of a multi-worker run."""
    return strategy.extended.should_checkpoint
