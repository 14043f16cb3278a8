"""Part B's training and storage: the UNets, the training loop and its runs, resumable state, the EMA of the weights,
the store of trained models, MNIST, precision and the verified cache format."""
