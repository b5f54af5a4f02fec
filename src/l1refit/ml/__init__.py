"""The network, its Keras-faithful training, the event-identity folds and the non-network baselines.

See docs/training.md.
"""
