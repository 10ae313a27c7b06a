"""Module 6: the modern paradigm.

Three ideas that shape today's networks:

* GCN (Kipf and Welling, 2017): convolution on a graph, each node averaging its neighbours through
  the renormalised adjacency ``D^-1/2 (A + I) D^-1/2`` (``gcn.py``);
* BERT (Devlin et al., 2018): a Transformer encoder pre-trained on unlabelled text by masked
  language modelling, then fine-tuned with few labels (``bert.py``);
* BitNet b1.58 (Ma et al., 2024): linear layers whose weights are -1, 0 or +1 and whose
  activations are 8-bit integers, trained with the straight-through estimator (``bitnet.py``).
"""
