"""Adam with a learning-rate multiplier per group of variables, so fine-tuned encoder blocks learn slower
than the decoder. (Keras 3 has no per-variable learning rate; Adam's steps ignore gradient scale, so scaling
gradients would not do it.)"""
import keras


@keras.saving.register_keras_serializable("captioner")
class GroupedAdam(keras.optimizers.Adam):
    """`multipliers` maps a variable-path prefix (e.g. "show_attend_tell/encoder_head") to a learning-rate factor."""

    def __init__(self, *args, multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.multipliers = dict(multipliers or {})

    def build(self, variables):
        super().build(variables)
        self._factors = [next((factor for prefix, factor in self.multipliers.items() if v.path.startswith(prefix)), 1.0)
                         for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[self._get_variable_index(variable)]
        super().update_step(gradient, variable, learning_rate * factor)

    def get_config(self):
        return {**super().get_config(), "multipliers": self.multipliers}
