"""Module 3: applying CNNs, from whole-image labels to objects and pixels.

* R-CNN (Girshick, Donahue, Darrell and Malik, 2014): region proposals, a CNN pass per warped
  region, per-class linear SVMs and bounding-box regression (``rcnn.py``);
* U-Net (Ronneberger, Fischer and Brox, 2015): a contracting and an expanding path joined by skip
  connections, a label for every pixel (``unet.py``);
* Faster R-CNN (Ren, He, Girshick and Sun, 2015): a region proposal network sharing the detector's
  convolutional features, RoI pooling and a two-stage head (``faster_rcnn.py``);
* YOLO v1 (Redmon, Divvala, Girshick and Farhadi, 2016): detection as one regression over an
  S x S grid (``yolo.py``);
* Mask R-CNN (He, Gkioxari, Dollar and Girshick, 2017): Faster R-CNN with RoIAlign and a mask
  branch, a mask for every detected object (``mask_rcnn.py``).
"""
