"""The names the command line offers whose registries need Keras to import, kept here so that a misspelt choice is
refused as the command line is parsed, before TensorFlow loads. Each registry is keyed by exactly these names, in
this order (tests/test_cli.py checks)."""

ATTENTIONS = ("soft", "hard", "local-global")  # captioner.attention.ATTENTIONS
SCORES = ("additive", "general", "dot")  # captioner.attention.SCORES
BACKBONES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "squeezenet", "resnet50",
             "efficientnetv2-b0", "mobilenetv3-large", "mobilenetv3-small")  # captioner.encoder.BACKBONES
METEOR = ("auto", "coco", "nltk", "none")  # captioner.metrics.METEOR_CHOICES, whose module loads nltk
