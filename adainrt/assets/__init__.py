"""Files shipped inside the package: VGG channel means, sample images, the default decoder."""
