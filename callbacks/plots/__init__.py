"""Figures that show what a network is doing, drawn from plain NumPy data.

The figure callbacks call these functions at the end of training (or every few epochs), save the
result as a PNG next to the run and log it to Weights & Biases. Each function takes NumPy arrays
(never tensors) and returns a :class:`matplotlib.figure.Figure`, so you can also call them from a
notebook. What each figure tells you:

``learning_curves`` (:mod:`.curves`)
    Loss, accuracy, learning rate and any other metric against the epoch. Training curves are
    dashed, validation curves solid. A training loss that keeps falling while the validation loss
    turns upward is over-fitting; two flat, high curves are under-fitting; a jagged or exploding
    curve often means the learning rate is too high. The best validation value is starred.

``gradient_flow`` (:mod:`.curves`)
    The size (L2 norm) of each layer's gradient. If layers near the input get gradients many
    orders of magnitude smaller than layers near the output, they barely learn: the vanishing
    gradient problem that sigmoid networks had and that ReLU, careful initialisation, batch norm
    and residual connections (ResNet) fixed.

``confusion_matrix`` (:mod:`.classification`)
    Row ``i`` is the true class, column ``j`` the predicted class, each cell shows how many test
    examples of class ``i`` were predicted as ``j``. Colour is the fraction of the row, so a small
    class is as readable as a big one: a perfect model has a dark diagonal, and a dark
    off-diagonal cell names the pair of classes the model confuses.

``make_grid`` + ``decision_boundary`` (:mod:`.classification`)
    For 2-D inputs (XOR, moons, spirals): the plane is coloured by the class the model predicts
    there, the black lines are the decision boundaries, and the dots are the data. A Perceptron
    can only draw one straight line, an MLP can bend it; that is the whole story of XOR.
    ``decision_boundary_axes`` draws the same on one panel of a larger figure.

``conv_filters`` (:mod:`.convolutions`)
    The weights of the first convolution layer, one small image per filter. Trained filters look
    like edge, colour and texture detectors; untrained ones look like noise.

``feature_maps`` (:mod:`.convolutions`)
    What each layer "sees" for one input image: one small image per channel. Early layers keep
    the picture (edges), deeper layers are smaller and more abstract.

``save_figure`` (:mod:`.style`)
    Writes a figure as a PNG file.

Conventions (:mod:`.style`): every figure is laid out by matplotlib's constrained layout
(:func:`new_figure`; :func:`new_image_figure`, its "compressed" form, where panels keep a fixed
aspect), in one set of font sizes. Its main title is its suptitle (:func:`add_title`,
``fig.get_suptitle()``), panels have their own titles, and a note under the figure is its
supxlabel (:func:`add_note`); both wrap rather than run off the figure. Nothing here uses
``matplotlib.pyplot``: each call builds its own figure, which is registered nowhere and freed
when the caller drops it. Bad input shapes raise ``ValueError``; empty input gives a figure that
says so. The model files draw their own figures with the same helpers (``new_figure``,
``style_axes``, ``add_title``, ``add_note``, ``log_y``, the sizes).
"""

from callbacks.plots.classification import (
    confusion_matrix,
    decision_boundary,
    decision_boundary_axes,
    make_grid,
)
from callbacks.plots.convolutions import conv_filters, feature_maps
from callbacks.plots.curves import gradient_flow, learning_curves
from callbacks.plots.style import (
    LABEL_SIZE,
    LEGEND_SIZE,
    NOTE_COLOR,
    NOTE_SIZE,
    SUPTITLE_SIZE,
    TICK_SIZE,
    TITLE_SIZE,
    add_note,
    add_title,
    empty_figure,
    log_y,
    new_figure,
    new_image_figure,
    qualitative_colors,
    save_figure,
    style_axes,
)

__all__ = [
    "LABEL_SIZE",
    "LEGEND_SIZE",
    "NOTE_COLOR",
    "NOTE_SIZE",
    "SUPTITLE_SIZE",
    "TICK_SIZE",
    "TITLE_SIZE",
    "add_note",
    "add_title",
    "confusion_matrix",
    "conv_filters",
    "decision_boundary",
    "decision_boundary_axes",
    "empty_figure",
    "feature_maps",
    "gradient_flow",
    "learning_curves",
    "log_y",
    "make_grid",
    "new_figure",
    "new_image_figure",
    "qualitative_colors",
    "save_figure",
    "style_axes",
]
