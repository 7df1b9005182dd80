// Placeholder while the training engine is written.
