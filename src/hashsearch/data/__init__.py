"""Loading labelled image data sets as uint8 arrays: CIFAR-10, image folders, digits."""

from hashsearch.data.cache import cache_dir
from hashsearch.data.cifar10 import download_cifar10, load_cifar10
from hashsearch.data.dataset import ImageDataset
from hashsearch.data.decode import IMAGE_EXTENSIONS, decode_image
from hashsearch.data.digits import load_digits_dataset
from hashsearch.data.folder import load_image_folder
from hashsearch.data.registry import list_datasets, load_dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "cache_dir",
    "decode_image",
    "download_cifar10",
    "list_datasets",
    "load_cifar10",
    "load_dataset",
    "load_digits_dataset",
    "load_image_folder",
]
