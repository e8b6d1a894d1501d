"""The names that key the registries living in modules slow to import (Keras, nltk, the tokenizer's tables).

Each of those registries is built from a tuple here, in its order, so every name is written once, here, and the
command line offers and checks the choices before TensorFlow loads. Datasets (`captioner.data.READERS`) and
training's objectives, strategies and vocabulary policies (`captioner.config`) are listed where they live: those
modules load at once.
"""

ATTENTIONS = ("soft", "hard", "local-global")  # keys captioner.attention.ATTENTIONS
SCORES = ("additive", "general", "dot")  # keys captioner.attention.SCORES
EFFICIENTNET_LITE = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")  # efficientnet_lite.VARIANTS
# Keys captioner.encoder.BACKBONES.
BACKBONES = (*EFFICIENTNET_LITE, "squeezenet", "resnet50", "efficientnetv2-b0", "mobilenetv3-large",
             "mobilenetv3-small")
DEFAULT_BACKBONE = "efficientnet-lite2"  # TrainConfig's and the encoder layers'
# The METEOR implementations captioner.metrics can run, in the order "auto" tries them.
METEOR_IMPLEMENTATIONS = ("coco", "nltk")
METEOR_METHODS = ("auto", *METEOR_IMPLEMENTATIONS, "none")
METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")  # captioner.metrics.score's, in order
