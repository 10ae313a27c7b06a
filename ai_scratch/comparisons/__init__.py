"""Comparisons: several models of the history trained on the same data and drawn side by side.

A model file tells one paper; a comparison tells the step from one paper to the next (the
Perceptron's line, ADALINE's least squares, the MLP's hidden units on the same XOR). It sits above
the models: it imports them, their experiment configs and the command line's tracking, which no
model file does. Each module of the history has its own (``module1``), run by
``ai-scratch compare module-<n>``, which calls the module's ``main(args)``.
"""
