"""Yardsticks, not the library: the train-step benchmark, the input benchmark, an independent
PyTorch AlexNet and the textbook Flax AlexNet that the benchmark and the tests compare against."""
