"""Module 4: sequence models.

Networks that read a sequence one step at a time and carry what they have seen in a state:

* RNN (Elman, 1990): the simple recurrent network, ``h_t = tanh(W x_t + U h_{t-1} + b)``
  (``rnn.py``);
* LSTM (Hochreiter and Schmidhuber, 1997; forget gate: Gers, Schmidhuber and Cummins, 2000):
  gates around a memory cell whose error flows back unchanged (``lstm.py``);
* GRU (Cho et al., 2014): two gates, no separate memory cell (``gru.py``);
* LSTM + attention (Bahdanau, Cho and Bengio, 2014): an encoder-decoder whose decoder looks back at
  every encoder state;
* Transformer (Vaswani et al., 2017): attention alone, no recurrence.

The recurrent layers are written by hand from the papers; each can also run on PyTorch's fused
kernels (``fused=True``) with the very same parameters. ``recurrent.py`` holds what they share:
running a cell over time, stacked layers, both directions, truncated backpropagation through time.
"""
