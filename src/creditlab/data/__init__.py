"""Datasets from their official files, verified, held whole as tensors on the training device."""

from creditlab.data.dataset import Dataset, batch_indices, load_dataset, random_crop_flip
from creditlab.data.specs import DATASETS, DatasetSpec, FileSpec

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "FileSpec", "batch_indices", "load_dataset",
           "random_crop_flip"]
