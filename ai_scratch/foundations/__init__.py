"""Module 1: the foundations (Perceptron, ADALINE, MLP, Hopfield)."""
