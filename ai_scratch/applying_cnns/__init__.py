"""Module 3: applying CNNs, from whole-image labels to objects and pixels.

* U-Net (Ronneberger, Fischer and Brox, 2015): a contracting and an expanding path joined by skip
  connections, a label for every pixel (``unet.py``);
* YOLO v1 (Redmon, Divvala, Girshick and Farhadi, 2016): detection as one regression over an
  S x S grid (``yolo.py``).

R-CNN (Girshick et al., 2014), Faster R-CNN (Ren et al., 2015) and Mask R-CNN (He et al., 2017)
come next.
"""
