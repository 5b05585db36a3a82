"""Data layer: image decoding, samples and their review, object storage, import sources, splits, labels, fsck."""
