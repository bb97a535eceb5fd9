"""``lenet``: LeNet-5 with ReLU activations, the feature CNN of the data-subsampling paper on MNIST.

The paper (efficient-augmentation-via-data-subsampling, section 5 and appendix B) featurises MNIST
with "a LeNet architecture (LeCun et al., 1998) with ReLU activations". The authors' Keras LeNet
(``create_MNIST_CNN_model_lenet`` in github.com/mkuchnik/Efficient_Augmentation): 5x5 convolutions
with 6 then 16 channels (no padding), each followed by ReLU and 2x2 max-pooling, then dense layers
of 120 and 84 units with ReLU, then the classifier. The features are the 84-d output of the last
hidden layer (the authors read ``layers[-2]``). PyTorch's default initialisation.

On 28x28 inputs the second pooling sees 8x8 maps and gives 4x4 (16*4*4 = 256 inputs to the 120-unit
layer), exactly LeNet. It is written as an adaptive max-pool to 4x4 so that any input of at least
16x16 pixels works (e.g. 32x32 CIFAR images, where it pools 10x10 maps to 4x4 with uneven windows).
"""
from torch import nn

from .base import Classifier

__all__ = ["LeNet"]


class LeNet(Classifier):
    """conv(6,5x5)-relu-pool-conv(16,5x5)-relu-pool-fc120-relu-fc84-relu -> fc. Features (N, 84)."""

    def __init__(self, num_classes=10, in_channels=1, mean=None, std=None):
        super().__init__(in_channels, num_classes, mean, std)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.AdaptiveMaxPool2d(4), nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True))
        self.fc = nn.Linear(84, num_classes)

    def body(self, x):
        if x.shape[-1] < 16 or x.shape[-2] < 16:
            raise ValueError(f"lenet needs images of at least 16x16 pixels, got {tuple(x.shape[-2:])}")
        return self.net(x)
