"""Module 5: the generative era.

Models that learn the distribution of their data and draw new examples from it:

* VAE (Kingma and Welling, 2013): an encoder to a Gaussian posterior, the reparameterisation
  trick, the evidence lower bound (``vae.py``);
* GAN (Goodfellow et al., 2014): a generator and a discriminator in a minimax game (``gan.py``);
* DCGAN (Radford, Metz and Chintala, 2015): the convolutional GAN and its architecture guidelines
  (``dcgan.py``);
* DDPM (Ho, Jain and Abbeel, 2020): learn to undo a fixed noising process, one step at a time
  (``ddpm.py``).

``base.py`` holds what they share (:class:`~ai_scratch.generative_era.base.GenerativeModel`): batches
without labels, ``sample(n)``, the loss logged term by term, and the quality of the samples measured
at the end of validation and test; ``evaluation.py`` measures that quality without downloads.
"""
