"""Module 4: sequence models.

Networks that read a sequence one step at a time and carry what they have seen in a state:

* RNN (Elman, 1990): the simple recurrent network, ``h_t = tanh(W x_t + U h_{t-1} + b)``
  (``rnn.py``);
* LSTM (Hochreiter and Schmidhuber, 1997; forget gate: Gers, Schmidhuber and Cummins, 2000):
  gates around a memory cell whose error flows back unchanged (``lstm.py``);
* GRU (Cho et al., 2014): two gates, no separate memory cell (``gru.py``);
* LSTM + attention (Bahdanau, Cho and Bengio, 2014): an encoder-decoder whose decoder looks back at
  every encoder state (``bahdanau.py``; its quality-against-length curve in ``bahdanau_figures.py``);
* Transformer (Vaswani et al., 2017): attention alone, no recurrence (``transformer.py``, the
  attention itself in ``attention.py``, the memory cost in L^2 in ``transformer_figures.py``).

The recurrent layers and the attention are written by hand from the papers; each can also run on
PyTorch's fused kernels (``fused=True``: ``nn.RNN``/``nn.LSTM``/``nn.GRU``,
``scaled_dot_product_attention``) with the very same parameters. ``recurrent.py`` holds what the
recurrent layers share: running a cell over time, stacked layers, both directions, truncated
backpropagation through time. ``tasks.py`` holds what the LightningModules share: the training,
validation and test steps and metrics of a regression, a classification, a language model and a
sequence-to-sequence task, and ``RecurrentNetwork``, a recurrent layer with its embedding and readout.
"""
