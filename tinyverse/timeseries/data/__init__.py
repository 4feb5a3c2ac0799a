"""Time-series data: offline UCR/UEA sets and bring-your-own class folders, split and normalised.

Importing this module registers the built-in datasets in ``DATASETS`` ("ucr", "folder").
"""
from tinyverse.registry import DATASETS
from .folder import ClassFolderDataset
from .normalize import ChannelNormalizer
from tinyverse.registered import defined_in, load_registered
from .splits import DatasetError, TimeSeriesData, label_sort_key, sort_labels, stratified_split
from .ucr import UCRDataset

__all__ = [
    "DATASETS",
    "ChannelNormalizer",
    "ClassFolderDataset",
    "DatasetError",
    "TimeSeriesData",
    "UCRDataset",
    "defined_in",
    "label_sort_key",
    "load_registered",
    "sort_labels",
    "stratified_split",
]
